"""modelpipe deploy --target kserve against a loopback Kubernetes API validating against the KServe CRD."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi
from modelpipe.cli import main
from modelpipe.errors import DeployError
from modelpipe.steps.deploy import DeployResult, KServeOptions, deploy_model
from modelpipe.targets import kserve
from modelpipe.targets.kserve import Resources

from tests.support.fake_kube import FakeKube
from tests.support.tools import free_port

pytestmark = pytest.mark.integration

IMAGE = "quay.io/org/diffusers-runtime@sha256:" + "ab" * 32
MODEL_URI = "s3://models/tiny-sd/0123abcd"
# Not exposed: KServe reports the in-cluster address as status.url too.
INTERNAL_URL = "http://tiny-sd-predictor.models.svc.cluster.local"


def _deploy(kubeconfig: Path, **overrides: object) -> DeployResult:
    options = {
        "runtime_image": IMAGE,
        "storage_key": "minio-connection",
        "kubeconfig": kubeconfig,
        "poll_seconds": 0.02,
        "timeout": 5.0,
        "resources": Resources(cpu="2", memory="8Gi", gpus=2),
        **overrides,
    }
    return deploy_model(
        target="kserve",
        name="tiny-sd",
        model_uri=MODEL_URI,
        registered_model_id="1",
        model_version_id="2",
        kserve=KServeOptions(**options),  # type: ignore[arg-type]
    )


def test_deploy_creates_isvc_with_runtime_image_model_uri_and_labels(
    kube: FakeKube, kubeconfig: Path
) -> None:
    result = _deploy(kubeconfig, registry_name="modelregistry-public")

    assert result.endpoint_url == INTERNAL_URL
    assert result.served_model_name == "tiny-sd"
    assert result.created
    isvc = kube.objects[("models", "tiny-sd")]
    assert result.isvc_uid == isvc["metadata"]["uid"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["image"] == IMAGE
    assert model["runtime"] == "diffusers-runtime"
    assert model["modelFormat"] == {"name": "diffusers"}
    assert model["storageUri"] == MODEL_URI
    assert model["storage"] == {"key": "minio-connection"}
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert isvc["metadata"]["labels"] == {
        "opendatahub.io/dashboard": "true",
        "modelregistry.opendatahub.io/registered-model-id": "1",
        "modelregistry.opendatahub.io/model-version-id": "2",
        "modelregistry.opendatahub.io/name": "modelregistry-public",
    }
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert {r.authorization for r in kube.requests} == {f"Bearer {kube.token}"}


def test_redeploy_patches_the_existing_isvc(kube: FakeKube, kubeconfig: Path) -> None:
    first = _deploy(kubeconfig)
    new_image = "quay.io/org/diffusers-runtime@sha256:" + "cd" * 32
    second = _deploy(kubeconfig, runtime_image=new_image)

    assert not second.created
    assert second.isvc_uid == first.isvc_uid
    patches = kube.sent("PATCH")
    assert [p.content_type for p in patches] == ["application/merge-patch+json"]
    isvc = kube.objects[("models", "tiny-sd")]
    assert isvc["spec"]["predictor"]["model"]["image"] == new_image
    assert isvc["metadata"]["generation"] == 2
    assert len(kube.sent("POST")) == 1


def test_wait_ignores_ready_status_of_the_previous_generation(kube: FakeKube, kubeconfig: Path) -> None:
    _deploy(kubeconfig)
    kube.ready_after_reads = 3
    spec = kserve.IsvcSpec("tiny-sd", "models", MODEL_URI, "diffusers-runtime", runtime_image=IMAGE)
    spec = kserve.IsvcSpec(**{**spec.__dict__, "resources": Resources(gpus=0)})

    with kserve.kube_client(kubeconfig) as client:
        api = CustomObjectsApi(client)
        applied, created = kserve.apply_inference_service(api, kserve.build_inference_service(spec))
        isvc = kserve.wait_until_ready(
            api,
            "tiny-sd",
            "models",
            timeout=5,
            generation=applied["metadata"]["generation"],
            poll_seconds=0.01,
        )

    assert not created
    assert applied["metadata"]["generation"] == 2
    assert isvc["status"]["observedGeneration"] == 2


def test_wait_rides_out_a_brief_api_server_outage(kube: FakeKube, kubeconfig: Path) -> None:
    _deploy(kubeconfig)
    kube.unavailable_gets = 2

    with kserve.kube_client(kubeconfig) as client:
        api = CustomObjectsApi(client)
        isvc = kserve.wait_until_ready(api, "tiny-sd", "models", timeout=5, poll_seconds=0.01)

    assert kube.unavailable_gets == 0
    assert isvc["status"]["url"] == INTERNAL_URL


def test_timeout_raises_deploy_error_listing_conditions(kube: FakeKube, kubeconfig: Path) -> None:
    kube.ready_after_reads = None

    with pytest.raises(DeployError) as exc:
        _deploy(kubeconfig, timeout=0.3)

    message = str(exc.value)
    assert "models/tiny-sd not Ready after 0 s" in message
    assert (
        "PredictorReady=False (MinimumReplicasUnavailable: Deployment does not have minimum availability.)"
        in (message)
    )
    assert "Ready=False (MinimumReplicasUnavailable)" in message


def test_failed_model_load_fails_fast_with_the_failure(
    kube: FakeKube, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube.ready_after_reads = None
    simulate_controller = kube._status

    def model_load_fails(key: tuple[str, str], obj: dict[str, Any]) -> None:
        simulate_controller(key, obj)
        obj["status"]["modelStatus"] = {
            "transitionStatus": "BlockedByFailedLoad",
            "lastFailureInfo": {
                "reason": "ModelLoadFailed",
                "message": "no model_index.json in /mnt/models",
            },
        }

    monkeypatch.setattr(kube, "_status", model_load_fails)
    with pytest.raises(
        DeployError,
        match=r"failed \(BlockedByFailedLoad\).*model failure: no model_index\.json in /mnt/models",
    ):
        _deploy(kubeconfig, timeout=30)


def test_api_server_refusal_is_reported_with_its_message(kube: FakeKube, kubeconfig: Path) -> None:
    body = kserve.build_inference_service(
        kserve.IsvcSpec("tiny-sd", "models", MODEL_URI, "diffusers-runtime")
    )
    body["spec"]["predictor"]["model"]["storageURI"] = MODEL_URI  # misspelt: the strict CRD schema refuses it

    with (
        kserve.kube_client(kubeconfig) as client,
        pytest.raises(DeployError) as exc,
    ):
        kserve.apply_inference_service(CustomObjectsApi(client), body)

    assert "HTTP 422" in str(exc.value)
    assert "storageURI" in str(exc.value)


def test_wrong_token_is_a_permission_error_with_a_fix(kube: FakeKube, kubeconfig: Path) -> None:
    kube.token = "another-token"

    with pytest.raises(
        DeployError,
        match=r"refused to read InferenceService models/tiny-sd \(HTTP 401\)",
    ):
        _deploy(kubeconfig)


def test_unreachable_api_server_is_a_deploy_error(tmp_path: Path) -> None:
    fake = FakeKube()
    config = tmp_path / "kubeconfig"
    fake._server = type("S", (), {"server_address": ("127.0.0.1", free_port())})()  # type: ignore[assignment]
    fake.write_kubeconfig(config)

    with pytest.raises(DeployError, match="Kubernetes API unreachable"):
        _deploy(config)


def test_cli_deploys_and_writes_results(
    kube: FakeKube, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODEL_REGISTRY_URL", raising=False)
    results = tmp_path / "results"

    code = main(
        [
            "deploy",
            "--target",
            "kserve",
            "--name",
            "tiny-sd",
            "--model-uri",
            MODEL_URI,
            "--runtime-image",
            IMAGE,
            "--data-connection",
            "minio",
            "--gpus",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            "--results-dir",
            str(results),
        ]
    )

    assert code == 0
    assert (results / "ENDPOINT_URL").read_text() == INTERNAL_URL
    assert (results / "SERVED_MODEL_NAME").read_text() == "tiny-sd"
    assert (results / "INFERENCE_SERVICE_ID").read_text() == ""
    limits = kube.objects[("models", "tiny-sd")]["spec"]["predictor"]["model"]["resources"]["limits"]
    assert "nvidia.com/gpu" not in limits
