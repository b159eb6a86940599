"""The official model-registry 0.3.18 client against the local server (subprocess on a free port)."""

from __future__ import annotations

import warnings

import httpx
import pytest
from model_registry import ModelRegistry
from model_registry.exceptions import StoreError

from tests.fixtures.registry import RegistryFactory, RegistryServer

pytestmark = pytest.mark.integration

MODEL_URI = "s3://models/tiny-sd/v1?endpoint=http://127.0.0.1:9000&defaultRegion=us-east-1"


def _client(server: RegistryServer, token: str | None = None) -> ModelRegistry:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "User access token is missing" on plain http
        return ModelRegistry(server.url, author="tester", is_secure=False, user_token=token)


def _register(client: ModelRegistry, version: str, **metadata: object) -> None:
    client.register_model(
        "tiny-sd",
        MODEL_URI,
        model_format_name="diffusers",
        model_format_version="0.42",
        version=version,
        storage_key="local-s3",
        storage_path="tiny-sd/v1",
        metadata=metadata or None,  # type: ignore[arg-type]
    )


def test_register_then_find_model_version_and_artifact(registry_server: RegistryServer) -> None:
    client = _client(registry_server)
    _register(client, "v1", **{"text-to-image": "", "clip_score": 0.31, "steps": 2, "validated": True})
    model = client.get_registered_model("tiny-sd")
    version = client.get_model_version("tiny-sd", "v1")
    artifact = client.get_model_artifact("tiny-sd", "v1")
    assert model is not None and version is not None and artifact is not None
    assert version.registered_model_id == model.id
    expected = {"text-to-image": "", "clip_score": 0.31, "steps": 2, "validated": True}
    assert version.custom_properties == expected
    assert (artifact.uri, artifact.storage_key) == (MODEL_URI, "local-s3")
    assert artifact.model_format_name == "diffusers"


def test_registering_an_existing_version_raises_store_error(registry_server: RegistryServer) -> None:
    client = _client(registry_server)
    _register(client, "v1")
    with pytest.raises(StoreError, match="already exists"):
        _register(client, "v1")


def test_update_replaces_custom_properties_and_keeps_identity(registry_server: RegistryServer) -> None:
    client = _client(registry_server)
    _register(client, "v1", stage="candidate")
    version = client.get_model_version("tiny-sd", "v1")
    assert version is not None
    version.custom_properties = {"clip_score": 0.33, "clip_score_text": "0.33"}
    version.description = "benchmarked"
    updated = client.update(version)
    assert updated.id == version.id and updated.name == "v1"
    again = client.get_model_version("tiny-sd", "v1")
    assert again is not None and again.description == "benchmarked"
    assert again.custom_properties == {"clip_score": 0.33, "clip_score_text": "0.33"}
    assert int(again.last_update_time_since_epoch or 0) > int(again.create_time_since_epoch or 0)


def test_pager_with_small_pages_visits_every_version_once_and_ends(registry_server: RegistryServer) -> None:
    client = _client(registry_server)
    for index in range(5):
        _register(client, f"v{index}")
    ascending = [v.name for v in client.get_model_versions("tiny-sd").page_size(2)]
    descending = [v.name for v in client.get_model_versions("tiny-sd").page_size(2).descending()]
    assert ascending == [f"v{i}" for i in range(5)]
    assert descending == list(reversed(ascending))
    by_update = client.get_model_versions("tiny-sd").order_by_update_time().page_size(2).descending()
    assert [v.name for v in by_update] == list(reversed(ascending))
    assert [m.name for m in client.get_registered_models().page_size(1)] == ["tiny-sd"]


def test_client_sends_the_token_the_server_requires(registry_server_factory: RegistryFactory) -> None:
    server = registry_server_factory(token="local-registry-token")
    client = _client(server, token="local-registry-token")
    _register(client, "v1")
    assert client.get_model_version("tiny-sd", "v1") is not None
    unauthenticated = httpx.get(f"{server.api()}/registered_models")
    assert unauthenticated.status_code == 401
    assert set(unauthenticated.json()) == {"code", "message"}


def test_v1alpha3_only_server_answers_404_on_v1(registry_server_factory: RegistryFactory) -> None:
    server = registry_server_factory(api_versions=("v1alpha3",))
    created = httpx.post(f"{server.api('v1alpha3')}/registered_models", json={"name": "old"})
    assert created.status_code == 201
    assert httpx.get(f"{server.url}/api/model_registry/v1/registered_models").status_code == 404


def test_data_survives_a_restart_on_the_same_port_and_db(registry_server: RegistryServer) -> None:
    _register(_client(registry_server), "v1")
    registry_server.stop()
    registry_server.start()
    assert _client(registry_server).get_model_version("tiny-sd", "v1") is not None


def test_overview_page_shows_published_labels_and_properties(registry_server: RegistryServer) -> None:
    _register(_client(registry_server), "v1", **{"text-to-image": "", "clip_score_text": "0.3125"})
    page = httpx.get(registry_server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for expected in ("tiny-sd", "v1", "text-to-image", "clip_score_text", "0.3125"):
        assert expected in page.text
