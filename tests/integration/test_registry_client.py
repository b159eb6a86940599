"""connect_registry and its helpers against the local registry server (v1, v1alpha3-only, token, down)."""

from __future__ import annotations

import pytest
from model_registry import ModelRegistry
from model_registry.types import ModelVersion
from modelpipe.config import RegistrySettings
from modelpipe.errors import RegistryError
from modelpipe.registry_client import (
    connect_registry,
    find_version,
    get_version,
    upsert_inference_service,
    upsert_serving_environment,
)
from pydantic import SecretStr

pytestmark = pytest.mark.integration


def settings(url: str, token: str | None = None) -> RegistrySettings:
    return RegistrySettings(url=url, token=SecretStr(token) if token else None, author="tests")


def register_version(registry: ModelRegistry, name: str = "tiny-sd") -> ModelVersion:
    """Register ``name`` version 1.0 with the official client; return the version as find_version sees it."""
    registry.register_model(
        name,
        f"s3://models/{name}",
        model_format_name="diffusers",
        model_format_version="1",
        version="1.0",
    )
    version = find_version(registry, name, "1.0")
    assert version is not None and version.id and version.registered_model_id
    return version


def test_server_with_v1_is_used_on_v1(registry_server) -> None:
    registry = connect_registry(settings(registry_server.url))
    assert registry.api_version == "v1"


def test_v1alpha3_only_server_is_detected_and_fully_usable(
    registry_server_factory,
) -> None:
    server = registry_server_factory(api_versions=("v1alpha3",))
    registry = connect_registry(settings(server.url))
    assert registry.api_version == "v1alpha3"
    version = register_version(registry)
    assert get_version(registry, str(version.id)).name == "1.0"


def test_unreachable_registry_names_url_and_fix(registry_server) -> None:
    registry_server.stop()
    with pytest.raises(RegistryError) as caught:
        connect_registry(settings(registry_server.url))
    message = caught.value.one_line()
    assert registry_server.url in message and "unreachable" in message and "MODEL_REGISTRY_URL" in message


def test_wrong_token_is_refused_without_echoing_either_token(
    registry_server_factory,
) -> None:
    server = registry_server_factory(token="registry-token-abc123")
    with pytest.raises(RegistryError) as caught:
        connect_registry(settings(server.url, token="wrong-token-xyz789"))
    message = caught.value.one_line()
    assert "MODEL_REGISTRY_TOKEN" in message
    assert "wrong-token-xyz789" not in message and "registry-token-abc123" not in message


def test_token_is_sent_as_bearer(registry_server_factory) -> None:
    server = registry_server_factory(token="registry-token-abc123")
    assert connect_registry(settings(server.url, token="registry-token-abc123")).api_version == "v1"


def test_url_without_registry_api_is_refused(registry_server) -> None:
    with pytest.raises(RegistryError, match="no Model Registry API"):
        connect_registry(settings(f"{registry_server.url}/not-the-api"))


@pytest.mark.parametrize("api_versions", [("v1", "v1alpha3"), ("v1alpha3",)])
def test_deployment_records_are_upserted_in_place(registry_server_factory, api_versions) -> None:
    registry = connect_registry(settings(registry_server_factory(api_versions=api_versions).url))
    version = register_version(registry)
    environment = upsert_serving_environment(registry, "demo-namespace")
    assert upsert_serving_environment(registry, "demo-namespace").id == environment.id
    assert environment.id is not None

    def record(url: str):
        return upsert_inference_service(
            registry,
            serving_environment_id=environment.id,
            name="tiny-sd/5b0c-uid",
            registered_model_id=version.registered_model_id,
            model_version_id=version.id,
            runtime="diffusers-runtime",
            url=url,
        )

    first = record("http://tiny-sd.demo.svc")
    second = record("http://tiny-sd.demo.example.com")
    assert second.id == first.id
    assert second.custom_properties["url"].actual_instance.string_value == "http://tiny-sd.demo.example.com"
    assert second.desired_state == "DEPLOYED"


def test_inference_service_name_serving_another_model_is_refused(
    registry_server,
) -> None:
    registry = connect_registry(settings(registry_server.url))
    first, other = register_version(registry, "tiny-sd"), register_version(registry, "other-sd")
    environment = upsert_serving_environment(registry, "demo-namespace")
    assert environment.id is not None
    common = {
        "serving_environment_id": environment.id,
        "name": "tiny-sd/uid-1",
        "runtime": "diffusers-runtime",
    }
    upsert_inference_service(
        registry,
        registered_model_id=first.registered_model_id,
        model_version_id=first.id,
        **common,
    )
    with pytest.raises(RegistryError, match="serves registered model"):
        upsert_inference_service(
            registry,
            registered_model_id=other.registered_model_id,
            model_version_id=other.id,
            **common,
        )
