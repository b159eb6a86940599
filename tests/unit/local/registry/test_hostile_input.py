"""Client mistakes and hostile bodies are 4xx with a message, and nothing unservable is ever stored."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.unit.local.registry.conftest import Api

SURROGATE = "\udc00"
LOREM_250 = "x" * 250


def _raw_post(api: Api, path: str, text: str) -> Any:
    # json.dumps escapes a lone surrogate as \udc00, exactly what a hostile client sends on the wire.
    return api.client.post(
        api.prefix + path,
        content=text.encode("ascii"),
        headers={"Content-Type": "application/json"},
    )


def _assert_lists_work(api: Api) -> None:
    for path in (
        "/registered_models",
        "/model_versions",
        "/model_artifacts",
        "/artifacts",
    ):
        response = api.get(path)
        assert response.status_code == 200, (path, response.text)
    assert api.client.get("/").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {
            "name": "m",
            "customProperties": {SURROGATE: {"metadataType": "MetadataStringValue", "string_value": ""}},
        },
        {
            "name": "m",
            "customProperties": {"k": {"metadataType": "MetadataStringValue", "string_value": SURROGATE}},
        },
        {"name": "m", "description": "ok" + SURROGATE},
        {"name": SURROGATE},
        {"name": "m", "externalId": SURROGATE},
        {"name": "m", "owner": SURROGATE},
        {"name": "m", "language": ["en", SURROGATE]},
    ],
    ids=[
        "property-key",
        "property-value",
        "description",
        "name",
        "externalId",
        "owner",
        "list-item",
    ],
)
def test_lone_surrogate_is_refused_before_anything_is_stored(api: Api, body: dict[str, Any]) -> None:
    response = _raw_post(api, "/registered_models", json.dumps(body))
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json()["message"]
    assert api.get("/registered_models").json()["size"] == 0
    _assert_lists_work(api)


def test_lone_surrogate_in_artifact_uri_and_patch_is_refused(api: Api) -> None:
    version = api.version(api.model()["id"])
    path = f"/model_versions/{version['id']}/artifacts"
    response = _raw_post(
        api,
        path,
        json.dumps({"artifactType": "model-artifact", "uri": "s3://b/" + SURROGATE}),
    )
    assert response.status_code == 400, response.text
    model = api.get("/registered_models").json()["items"][0]
    patched = api.client.patch(
        f"{api.prefix}/registered_models/{model['id']}",
        content=json.dumps({"description": SURROGATE}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert patched.status_code == 400
    assert api.get(f"/registered_models/{model['id']}").json().get("description") is None
    _assert_lists_work(api)


def test_valid_unicode_round_trips(api: Api) -> None:
    text = "😀 ünïcødé \u0000 \u2028 end"
    created = api.model(
        "m-" + text,
        description=text,
        customProperties={text: {"metadataType": "MetadataStringValue", "string_value": text}},
    )
    listed = api.get("/registered_models").json()["items"]
    assert listed == [created]
    assert created["customProperties"][text]["string_value"] == text


def test_json_nested_1000_deep_is_400(api: Api) -> None:
    body = '{"name": "m", "customProperties": ' + "[" * 1000 + "]" * 1000 + "}"
    response = _raw_post(api, "/registered_models", body)
    assert response.status_code == 400
    assert "nests deeper" in response.json()["message"]


def test_json_nested_beyond_the_parser_limit_is_400(api: Api) -> None:
    response = _raw_post(api, "/registered_models", "[" * 100_000 + "]" * 100_000)
    assert response.status_code == 400


@pytest.mark.parametrize("artifact_type", [{"a": 1}, ["model-artifact"], 5, None])
def test_artifact_type_that_is_not_a_string_is_400(api: Api, artifact_type: Any) -> None:
    version = api.version(api.model()["id"])
    for path in ("/artifacts", f"/model_versions/{version['id']}/artifacts"):
        response = api.post(path, {"artifactType": artifact_type, "uri": "s3://b/k"})
        assert response.status_code == 400, (path, response.text)
        assert "artifactType" in response.json()["message"]


@pytest.mark.parametrize(
    "query",
    [
        "(" * 500 + "name = 'a'" + ")" * 500,
        " OR ".join(f"id = {i}" for i in range(100)),
        "id = 99999999999999999999999",
        "size_bytes > 1e999",
        "id IN (" + ", ".join(str(i) for i in range(300)) + ")",
        "name = '" + "x" * 5000 + "'",
    ],
    ids=[
        "nested-parentheses",
        "long-or-chain",
        "int-past-int64",
        "float-overflow",
        "long-in-list",
        "too-long",
    ],
)
def test_hostile_filter_query_is_400(api: Api, query: str) -> None:
    api.model()
    response = api.get("/registered_models", filterQuery=query)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["message"]


def _token(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        _token("ID", 2**70, 1),
        _token("ID", 1, -(2**64)),
        _token("ID", True, 1),
        "[" * 5000,
    ],
    ids=["value-past-int64", "id-past-int64", "bool", "garbage"],
)
def test_page_token_past_int64_is_400(api: Api, token: str) -> None:
    api.model()
    response = api.get("/registered_models", nextPageToken=token)
    assert response.status_code == 400, response.text
    _assert_lists_work(api)


def test_metric_step_past_int64_is_400(api: Api) -> None:
    version = api.version(api.model()["id"])
    body = {"artifactType": "metric", "name": "loss", "value": 1.0, "step": 2**64}
    assert api.post(f"/model_versions/{version['id']}/artifacts", body).status_code == 400


def test_unknown_field_body_matches_the_real_server(api: Api) -> None:
    response = api.post("/registered_models", {"name": "test_model", "ext_id": 123})
    assert response.status_code == 400
    assert response.json() == {
        "code": "Bad Request",
        "message": 'json: unknown field "ext_id"',
    }


def test_missing_name_body_matches_the_real_server(api: Api) -> None:
    model = api.model()
    response = api.post("/model_versions", {"registeredModelId": model["id"]})
    assert response.status_code == 422
    assert response.json() == {
        "code": "Bad Request",
        "message": "required field 'name' is zero value.",
    }


def test_version_name_limit_counts_the_model_id_prefix(api: Api) -> None:
    model = api.model()
    assert api.version(model["id"], LOREM_250)["name"] == LOREM_250
    too_long = LOREM_250 + "12345"  # 255 characters, 257 with the "<id>:" prefix
    response = api.post("/model_versions", {"name": too_long, "registeredModelId": model["id"]})
    assert response.status_code == 400
    assert "255" in response.json()["message"]
    assert api.post("/registered_models", {"name": "n" * 256}).status_code == 400
    assert api.model("n" * 255)["name"] == "n" * 255
