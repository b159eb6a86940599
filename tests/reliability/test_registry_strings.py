"""Stored-string round trip: whatever text a request carries, it is refused (4xx) or served back intact,
and no request can make a later list, read or the overview page fail."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.integration

# Every code point, with the troublesome ones (lone surrogates, NUL, non-characters) drawn often.
# (st.text never yields lone surrogates, so the string is joined from single characters.)
ANY_TEXT = st.lists(
    st.one_of(
        st.characters(exclude_categories=()),
        st.sampled_from(
            [
                "\udc00",
                "\ud800",
                "\udfff",
                "\x00",
                "\uffff",
                "\U0010ffff",
                "😀",
                "'",
                '"',
            ]
        ),
    ),
    max_size=40,
).map("".join)
_counter = itertools.count()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("registry-strings")
    server = RegistryServer(tmp / "r.db", api_versions=("v1",), token=None, log_path=tmp / "r.log")
    server.start()
    try:
        with httpx.Client(base_url=server.api("v1"), timeout=10) as client:
            yield client
    finally:
        server.stop()


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    # ensure_ascii: lone surrogates travel as \\udXXX escapes, as a hostile client would send them.
    data = json.dumps(body, ensure_ascii=True).encode("ascii")
    return client.post(path, content=data, headers={"Content-Type": "application/json"})


def _everything_reads(client: httpx.Client, model_id: str | None) -> None:
    for path in ("/registered_models", "/model_versions", "/artifacts"):
        response = client.get(path, params={"pageSize": 1000})
        assert response.status_code == 200, (path, response.text[:300])
    if model_id is not None:
        assert client.get(f"/registered_models/{model_id}").status_code == 200
    assert httpx.get(str(client.base_url).split("/api/")[0] + "/").status_code == 200


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(name=ANY_TEXT, description=ANY_TEXT, key=ANY_TEXT, value=ANY_TEXT, uri=ANY_TEXT)
def test_any_text_is_refused_or_served_back_intact(
    registry: httpx.Client, name: str, description: str, key: str, value: str, uri: str
) -> None:
    body = {
        "name": f"{next(_counter)}-{name}",
        "description": description,
        "customProperties": {key: {"metadataType": "MetadataStringValue", "string_value": value}},
    }
    created = _post(registry, "/registered_models", body)
    assert created.status_code < 500, created.text[:300]
    model_id = None
    if created.status_code == 201:
        model_id = created.json()["id"]
        served = registry.get(f"/registered_models/{model_id}").json()
        assert (served["name"], served["description"]) == (body["name"], description)
        assert served["customProperties"] == body["customProperties"]
        version = _post(
            registry,
            "/model_versions",
            {"name": value or "v", "registeredModelId": model_id},
        )
        assert version.status_code < 500, version.text[:300]
        if version.status_code == 201:
            artifact = _post(
                registry,
                f"/model_versions/{version.json()['id']}/artifacts",
                {"artifactType": "model-artifact", "uri": uri, "name": key or "a"},
            )
            assert artifact.status_code < 500, artifact.text[:300]
            if artifact.status_code == 201:
                assert artifact.json()["uri"] == uri
    else:
        assert created.status_code in (400, 409, 422), created.text[:300]
    _everything_reads(registry, model_id)
