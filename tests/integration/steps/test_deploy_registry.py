"""deploy records the deployment in the Model Registry as the in-cluster controller does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from modelpipe.config import RegistrySettings
from modelpipe.errors import ConfigError
from modelpipe.registry_client import connect_registry
from modelpipe.serving_defaults import PROP_DEFAULT_SIZE, PROP_DEFAULT_STEPS, PROP_SERVED_DEFAULTS
from modelpipe.steps import deploy as deploy_step
from modelpipe.steps.deploy import DeployResult, KServeOptions, deploy_model

from tests.fixtures.registry import RegistryFactory, RegistryServer
from tests.support.fake_kube import FakeKube

pytestmark = pytest.mark.integration

IMAGE = "quay.io/org/diffusers-runtime@sha256:" + "ab" * 32
MODEL_URI = "s3://models/tiny-sd/0123abcd"


@pytest.fixture(autouse=True)
def no_endpoint_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster deploy records what it passed; the in-cluster URL is not reachable from here."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a kserve deploy must not read the served defaults over HTTP")

    monkeypatch.setattr(deploy_step, "read_served_defaults", refuse)


def _register(
    server: RegistryServer, model: str = "tiny-sd", metadata: dict[str, str] | None = None
) -> tuple[str, str]:
    registry = connect_registry(RegistrySettings(server.url, None, "tests"))
    registered = registry.register_model(
        model,
        MODEL_URI,
        model_format_name="diffusers",
        model_format_version="1",
        version="v1",
        metadata=metadata,
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
    kubeconfig: Path,
    api_versions: tuple[str, ...],
) -> None:
    server = registry_server_factory(api_versions=api_versions)
    model_id, version_id = _register(server)

    result = _deploy(server, kubeconfig, model_id, version_id)

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
    registry_server: RegistryServer, kube: FakeKube, kubeconfig: Path
) -> None:
    model_id, version_id = _register(registry_server)

    first = _deploy(registry_server, kubeconfig, model_id, version_id)
    second = _deploy(registry_server, kubeconfig, model_id, version_id)

    assert second.inference_service_id == first.inference_service_id
    listed = _find(registry_server, "inference_services")
    assert listed["size"] == 1


def test_ids_of_different_models_are_refused_before_deploying(
    registry_server: RegistryServer, kube: FakeKube, kubeconfig: Path
) -> None:
    model_id, _ = _register(registry_server, "tiny-sd")
    _, other_version = _register(registry_server, "other-model")

    with pytest.raises(ConfigError, match=f"model version {other_version} belongs to registered model"):
        _deploy(registry_server, kubeconfig, model_id, other_version)
    assert kube.requests == []


def _served_defaults(server: RegistryServer) -> str:
    version = connect_registry(RegistrySettings(server.url, None, "tests")).get_model_version("tiny-sd", "v1")
    assert version is not None
    return str((version.custom_properties or {})[PROP_SERVED_DEFAULTS])


def test_deploy_records_the_default_flags_it_gave_the_runtime(
    registry_server: RegistryServer, kube: FakeKube, kubeconfig: Path
) -> None:
    metadata = {PROP_DEFAULT_STEPS: "4", PROP_DEFAULT_SIZE: "512x512"}
    model_id, version_id = _register(registry_server, metadata=metadata)

    _deploy(registry_server, kubeconfig, model_id, version_id)

    args = kube.objects[("models", "tiny-sd")]["spec"]["predictor"]["model"]["args"]
    assert args == ["--default_steps", "4", "--default_size", "512x512"]
    assert _served_defaults(registry_server) == "512x512, 4 steps, the model's guidance (runtime flags)"


def test_deploy_without_default_flags_records_the_models_own(
    registry_server: RegistryServer, kube: FakeKube, kubeconfig: Path
) -> None:
    model_id, version_id = _register(registry_server)

    _deploy(registry_server, kubeconfig, model_id, version_id)

    assert "args" not in kube.objects[("models", "tiny-sd")]["spec"]["predictor"]["model"]
    assert _served_defaults(registry_server) == "the model's own (no default flags given to the runtime)"
