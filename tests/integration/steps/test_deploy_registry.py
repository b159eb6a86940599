"""deploy records the deployment in the Model Registry as the in-cluster controller does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from modelpipe.config import RegistrySettings
from modelpipe.errors import ConfigError
from modelpipe.registry_client import connect_registry
from modelpipe.steps.deploy import DeployResult, KServeOptions, deploy_model

from tests.fixtures.registry import RegistryFactory, RegistryServer
from tests.support.fake_kube import FakeKube

pytestmark = pytest.mark.integration

IMAGE = "quay.io/org/diffusers-runtime@sha256:" + "ab" * 32
MODEL_URI = "s3://models/tiny-sd/0123abcd"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKube]:
    fake = FakeKube().start()
    fake.write_kubeconfig(tmp_path / "kubeconfig", namespace="models")
    try:
        yield fake
    finally:
        fake.stop()


def _register(server: RegistryServer, model: str = "tiny-sd") -> tuple[str, str]:
    registry = connect_registry(RegistrySettings(server.url, None, "tests"))
    registered = registry.register_model(
        model,
        MODEL_URI,
        model_format_name="diffusers",
        model_format_version="1",
        version="v1",
    )
    version = registry.get_model_version(model, "v1")
    assert registered.id is not None and version is not None and version.id is not None
    return registered.id, version.id


def _deploy(server: RegistryServer, kubeconfig: Path, model_id: str, version_id: str) -> DeployResult:
    return deploy_model(
        target="kserve",
        name="tiny-sd",
        model_uri=MODEL_URI,
        registered_model_id=model_id,
        model_version_id=version_id,
        registry_settings=RegistrySettings(server.url, None, "tests"),
        kserve=KServeOptions(runtime_image=IMAGE, kubeconfig=kubeconfig, poll_seconds=0.02, timeout=10),
    )


def _find(server: RegistryServer, path: str, **params: str) -> dict[str, Any]:
    response = httpx.get(f"{server.api()}/{path}", params=params, timeout=10)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.mark.parametrize("api_versions", [("v1", "v1alpha3"), ("v1alpha3",)], ids=["v1", "v1alpha3-only"])
def test_deploy_records_serving_environment_and_inference_service(
    registry_server_factory: RegistryFactory,
    kube: FakeKube,
    tmp_path: Path,
    api_versions: tuple[str, ...],
) -> None:
    server = registry_server_factory(api_versions=api_versions)
    model_id, version_id = _register(server)

    result = _deploy(server, tmp_path / "kubeconfig", model_id, version_id)

    isvc = kube.objects[("models", "tiny-sd")]
    env = _find(server, "serving_environment", name="models")
    recorded = _find(
        server,
        "inference_service",
        name=f"tiny-sd/{isvc['metadata']['uid']}",
        parentResourceId=env["id"],
    )
    assert result.inference_service_id == recorded["id"]
    assert (recorded["registeredModelId"], recorded["modelVersionId"]) == (
        model_id,
        version_id,
    )
    assert (recorded["runtime"], recorded["desiredState"]) == (
        "diffusers-runtime",
        "DEPLOYED",
    )
    # Not exposed: the recorded endpoint is the in-cluster URL (the exposed case is in
    # test_deploy_kserve_options.py).
    assert recorded["customProperties"]["url"] == {
        "string_value": "http://tiny-sd-predictor.models.svc.cluster.local",
        "metadataType": "MetadataStringValue",
    }
    assert isvc["metadata"]["labels"]["modelregistry.opendatahub.io/inference-service-id"] == recorded["id"]


def test_redeploy_updates_the_same_registry_record(
    registry_server: RegistryServer, kube: FakeKube, tmp_path: Path
) -> None:
    model_id, version_id = _register(registry_server)

    first = _deploy(registry_server, tmp_path / "kubeconfig", model_id, version_id)
    second = _deploy(registry_server, tmp_path / "kubeconfig", model_id, version_id)

    assert second.inference_service_id == first.inference_service_id
    listed = _find(registry_server, "inference_services")
    assert listed["size"] == 1


def test_ids_of_different_models_are_refused_before_deploying(
    registry_server: RegistryServer, kube: FakeKube, tmp_path: Path
) -> None:
    model_id, _ = _register(registry_server, "tiny-sd")
    _, other_version = _register(registry_server, "other-model")

    with pytest.raises(ConfigError, match=f"model version {other_version} belongs to registered model"):
        _deploy(registry_server, tmp_path / "kubeconfig", model_id, other_version)
    assert kube.requests == []
