"""The registry's HTTP rules (status codes, error bodies, uniqueness, PATCH) over raw HTTP, in process."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from modelpipe.local.registry.store import RegistryStore

from tests.unit.local.registry.conftest import Api


def test_create_returns_201_with_decimal_string_ids_and_times(api: Api) -> None:
    model = api.model("tiny", description="d")
    assert model["id"].isdigit() and model["name"] == "tiny" and model["state"] == "LIVE"
    assert model["createTimeSinceEpoch"].isdigit()
    assert model["createTimeSinceEpoch"] == model["lastUpdateTimeSinceEpoch"]
    assert model["customProperties"] == {}


def test_contexts_share_one_id_sequence_and_artifacts_have_their_own(api: Api) -> None:
    model = api.model()
    version = api.version(model["id"])
    environment = api.created("/serving_environments", {"name": "ns"})
    artifact = api.created(
        f"/model_versions/{version['id']}/artifacts", {"artifactType": "model-artifact", "uri": "s3://b/k"}
    )
    assert [model["id"], version["id"], environment["id"]] == ["1", "2", "3"]
    assert artifact["id"] == "1"


def test_unknown_id_is_404_with_error_body(api: Api) -> None:
    response = api.get("/registered_models/42")
    assert response.status_code == 404
    assert response.json()["code"] == "Not Found"
    assert "42" in response.json()["message"]


@pytest.mark.parametrize("bad_id", ["abc", "99999999999", "-1"])
def test_malformed_id_is_400(api: Api, bad_id: str) -> None:
    response = api.get(f"/model_versions/{bad_id}")
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message"}


def test_id_of_another_kind_is_404(api: Api) -> None:
    model = api.model()
    assert api.get(f"/model_versions/{model['id']}").status_code == 404


def test_duplicate_model_name_is_409(api: Api) -> None:
    api.model("same")
    response = api.post("/registered_models", {"name": "same"})
    assert response.status_code == 409
    assert response.json()["code"] == "Conflict"


def test_version_names_are_unique_per_model_only(api: Api) -> None:
    first, second = api.model("a"), api.model("b")
    api.version(first["id"], "v1")
    api.version(second["id"], "v1")
    response = api.post("/model_versions", {"name": "v1", "registeredModelId": first["id"]})
    assert response.status_code == 409


def test_artifact_names_are_unique_per_version_and_type(api: Api) -> None:
    version = api.version(api.model()["id"])
    path = f"/model_versions/{version['id']}/artifacts"
    api.created(path, {"artifactType": "model-artifact", "name": "weights"})
    api.created(path, {"artifactType": "doc-artifact", "name": "weights"})
    assert api.post(path, {"artifactType": "model-artifact", "name": "weights"}).status_code == 409


def test_metric_with_same_name_is_updated_in_place(api: Api) -> None:
    version = api.version(api.model()["id"])
    path = f"/model_versions/{version['id']}/artifacts"
    first = api.post(path, {"artifactType": "metric", "name": "clip", "value": 0.2})
    again = api.post(path, {"artifactType": "metric", "name": "clip", "value": 0.3})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["value"] == 0.3


def test_inference_service_names_are_unique_per_serving_environment(api: Api) -> None:
    model = api.model()
    envs = [api.created("/serving_environments", {"name": n}) for n in ("ns1", "ns2")]
    body = {"name": "isvc/uid", "registeredModelId": model["id"]}
    api.created("/inference_services", {**body, "servingEnvironmentId": envs[0]["id"]})
    api.created(
        f"/serving_environments/{envs[1]['id']}/inference_services",
        {**body, "servingEnvironmentId": envs[1]["id"]},
    )
    response = api.post("/inference_services", {**body, "servingEnvironmentId": envs[0]["id"]})
    assert response.status_code == 409


def test_external_id_is_unique_across_models_and_versions(api: Api) -> None:
    model = api.model("a", externalId="ext-1")
    response = api.post(
        "/model_versions", {"name": "v1", "registeredModelId": model["id"], "externalId": "ext-1"}
    )
    assert response.status_code == 409
    other = api.model("b")
    assert api.patch(f"/registered_models/{other['id']}", {"externalId": "ext-1"}).status_code == 409


def test_missing_required_field_is_422_with_bad_request_code(api: Api) -> None:
    response = api.post("/model_versions", {"name": "v1"})
    assert response.status_code == 422
    assert response.json()["code"] == "Bad Request"
    assert "registeredModelId" in response.json()["message"]


def test_empty_required_name_is_422(api: Api) -> None:
    assert api.post("/registered_models", {"name": ""}).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"name": "m", "colour": "red"},
        {"name": 5},
        {"name": "m", "state": "GONE"},
        {"name": "m", "customProperties": {"k": {"string_value": "no type"}}},
        {"name": "m", "customProperties": {"k": {"metadataType": "MetadataIntValue", "int_value": 42}}},
        {
            "name": "m",
            "customProperties": {"k": {"metadataType": "MetadataIntValue", "int_value": "3000000000"}},
        },
    ],
    ids=["unknown-field", "wrong-type", "bad-enum", "no-metadataType", "int-as-number", "int-beyond-int32"],
)
def test_invalid_body_is_400_naming_the_field(api: Api, body: dict[str, object]) -> None:
    response = api.post("/registered_models", body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "Bad Request"


def test_malformed_json_is_400(api: Api) -> None:
    response = api.client.post(api.prefix + "/registered_models", content=b"{not json")
    assert response.status_code == 400


def test_reference_to_missing_model_is_400(api: Api) -> None:
    assert api.post("/model_versions", {"name": "v1", "registeredModelId": "77"}).status_code == 400


def test_nested_create_under_missing_parent_is_404(api: Api) -> None:
    assert (
        api.post("/registered_models/77/versions", {"name": "v1", "registeredModelId": "77"}).status_code
        == 404
    )


def test_patch_merges_non_null_fields_and_moves_update_time(api: Api) -> None:
    model = api.model("m", description="first", owner="alice")
    patched = api.patch(f"/registered_models/{model['id']}", {"owner": "bob", "description": None}).json()
    assert (patched["owner"], patched["description"], patched["name"]) == ("bob", "first", "m")
    assert patched["createTimeSinceEpoch"] == model["createTimeSinceEpoch"]
    assert int(patched["lastUpdateTimeSinceEpoch"]) > int(model["lastUpdateTimeSinceEpoch"])


def test_patch_replaces_the_whole_custom_properties_map(api: Api) -> None:
    a = {"metadataType": "MetadataStringValue", "string_value": "x"}
    model = api.model("m", customProperties={"a": a, "b": a})
    patched = api.patch(f"/registered_models/{model['id']}", {"customProperties": {"c": a}}).json()
    assert patched["customProperties"] == {"c": a}
    kept = api.patch(f"/registered_models/{model['id']}", {"owner": "x"}).json()
    assert kept["customProperties"] == {"c": a}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/registered_models/{model}", {"name": "renamed"}),
        ("/model_versions/{version}", {"registeredModelId": "1"}),
    ],
)
def test_patch_cannot_change_name_or_parent(api: Api, path: str, body: dict[str, str]) -> None:
    model = api.model()
    version = api.version(model["id"])
    response = api.patch(path.format(model=model["id"], version=version["id"]), body)
    assert response.status_code == 400


def test_custom_properties_keep_their_metadata_type(api: Api) -> None:
    custom = {
        "label": {"metadataType": "MetadataStringValue", "string_value": ""},
        "size": {"metadataType": "MetadataIntValue", "int_value": "-42"},
        "clip": {"metadataType": "MetadataDoubleValue", "double_value": 0.31},
        "ok": {"metadataType": "MetadataBoolValue", "bool_value": True},
        "blob": {"metadataType": "MetadataStructValue", "struct_value": "e30="},
        "proto": {"metadataType": "MetadataProtoValue", "type": "t", "proto_value": "AA=="},
    }
    model = api.model("m", customProperties=custom)
    assert api.get(f"/registered_models/{model['id']}").json()["customProperties"] == custom


def test_find_by_name_and_parent(api: Api) -> None:
    model = api.model("m")
    version = api.version(model["id"], "v1")
    assert api.get("/registered_model", name="m").json()["id"] == model["id"]
    found = api.get("/model_version", name="v1", parentResourceId=model["id"])
    assert found.json()["id"] == version["id"]


def test_find_with_no_match_is_404(api: Api) -> None:
    assert api.get("/registered_model", name="nope").status_code == 404


def test_find_with_several_matches_is_404(api: Api) -> None:
    version = api.version(api.model()["id"])
    path = f"/model_versions/{version['id']}/artifacts"
    api.created(path, {"artifactType": "model-artifact", "name": "same"})
    api.created(path, {"artifactType": "doc-artifact", "name": "same"})
    assert api.get("/artifact", name="same", parentResourceId=version["id"]).status_code == 404


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/registered_model", {}),
        ("/model_version", {"name": "v1"}),
        ("/model_artifact", {"parentResourceId": "abc"}),
    ],
)
def test_find_without_enough_criteria_is_400(api: Api, path: str, params: dict[str, str]) -> None:
    assert api.get(path, **params).status_code == 400


def test_list_ignores_name_like_the_real_server(api: Api) -> None:
    api.model("a")
    api.model("b")
    assert api.get("/registered_models", name="a").json()["size"] == 2


def test_artifact_list_filters_by_type(api: Api) -> None:
    version = api.version(api.model()["id"])
    path = f"/model_versions/{version['id']}/artifacts"
    api.created(path, {"artifactType": "model-artifact", "name": "w"})
    api.created(path, {"artifactType": "metric", "name": "clip", "value": 1.0})
    metrics = api.get(path, artifactType="metric").json()
    assert [a["name"] for a in metrics["items"]] == ["clip"]
    assert api.get("/artifacts", artifactType="bogus").status_code == 400


def test_inference_service_model_and_version_follow_references(api: Api) -> None:
    model = api.model()
    api.version(model["id"], "v1")
    newest = api.version(model["id"], "v2")
    env = api.created("/serving_environments", {"name": "ns"})
    isvc = api.created(
        "/inference_services", {"registeredModelId": model["id"], "servingEnvironmentId": env["id"]}
    )
    assert isvc["desiredState"] == "DEPLOYED" and isvc["name"]
    assert api.get(f"/inference_services/{isvc['id']}/model").json()["id"] == model["id"]
    assert api.get(f"/inference_services/{isvc['id']}/version").json()["id"] == newest["id"]


def test_token_is_required_when_configured(make_api: Callable[..., Api]) -> None:
    api = make_api(token="s3cret-token")
    response = api.get("/registered_models")
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    wrong = api.client.get(api.prefix + "/registered_models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = api.client.get(
        api.prefix + "/registered_models", headers={"Authorization": "Bearer s3cret-token"}
    )
    assert right.status_code == 200


def test_only_the_configured_api_versions_are_served(make_api: Callable[..., Api]) -> None:
    api = make_api(api_versions=("v1alpha3",), prefix="/api/model_registry/v1alpha3")
    assert api.get("/registered_models").status_code == 200
    assert api.client.get("/api/model_registry/v1/registered_models").status_code == 404


def test_both_prefixes_share_one_store(make_api: Callable[..., Api]) -> None:
    api = make_api()
    api.model("shared")
    old = api.client.get("/api/model_registry/v1alpha3/registered_model", params={"name": "shared"})
    assert old.status_code == 200


def test_unknown_route_answers_with_error_body(api: Api) -> None:
    response = api.get("/no_such_resources")
    assert response.status_code == 404 and set(response.json()) == {"code", "message"}


def test_upsert_with_id_attaches_a_standalone_artifact(api: Api) -> None:
    version = api.version(api.model()["id"])
    standalone = api.created("/model_artifacts", {"name": "weights", "uri": "s3://b/w"})
    path = f"/model_versions/{version['id']}/artifacts"
    body = {"artifactType": "model-artifact", "id": standalone["id"], "storageKey": "conn"}
    response = api.post(path, body)
    assert response.status_code == 200
    assert response.json()["storageKey"] == "conn" and response.json()["uri"] == "s3://b/w"
    assert [a["id"] for a in api.get(path).json()["items"]] == [standalone["id"]]


def test_find_inference_service_by_name_in_its_serving_environment(api: Api) -> None:
    model = api.model()
    env = api.created("/serving_environments", {"name": "ns"})
    body = {"name": "sd/uid-1", "registeredModelId": model["id"], "servingEnvironmentId": env["id"]}
    isvc = api.created("/inference_services", body)
    assert api.get("/serving_environment", name="ns").json()["id"] == env["id"]
    found = api.get("/inference_service", name="sd/uid-1", parentResourceId=env["id"])
    assert found.json()["id"] == isvc["id"]


def test_patch_to_a_missing_model_version_is_400(api: Api) -> None:
    model = api.model()
    env = api.created("/serving_environments", {"name": "ns"})
    body = {"registeredModelId": model["id"], "servingEnvironmentId": env["id"]}
    isvc = api.created("/inference_services", body)
    response = api.patch(f"/inference_services/{isvc['id']}", {"modelVersionId": "999"})
    assert response.status_code == 400 and "modelVersionId" in response.json()["message"]


def test_generic_artifact_patch_keeps_the_type_and_rejects_another(api: Api) -> None:
    metric = api.created("/artifacts", {"artifactType": "metric", "name": "clip", "value": 0.1})
    patched = api.patch(f"/artifacts/{metric['id']}", {"artifactType": "metric", "value": 0.2})
    assert patched.status_code == 200 and patched.json()["value"] == 0.2
    assert api.patch(f"/artifacts/{metric['id']}", {"artifactType": "doc-artifact"}).status_code == 400
    assert api.get(f"/model_artifacts/{metric['id']}").status_code == 404


def test_overview_page_needs_the_token_too(make_api: Callable[..., Api]) -> None:
    api = make_api(token="page-token-1")
    assert api.client.get("/").status_code == 401
    assert api.client.get("/", headers={"Authorization": "Bearer page-token-1"}).status_code == 200


def test_locked_database_is_503_with_error_body(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def locked(*_: object, **__: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(RegistryStore, "create", locked)
    response = api.post("/registered_models", {"name": "m"})
    assert response.status_code == 503
    assert response.json()["code"] == "Service Unavailable"
    assert response.headers["retry-after"] == "5"
