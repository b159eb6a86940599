"""Serving options against the loopback Kubernetes API: canary and promotion, PVC, exposure with auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelpipe.errors import ConfigError
from modelpipe.steps.deploy import DeployResult, KServeOptions, deploy_model
from modelpipe.targets.kserve import Resources

from tests.support.fake_kube import FakeKube

pytestmark = pytest.mark.integration

IMAGE = "quay.io/org/diffusers-runtime@sha256:" + "ab" * 32
V1 = "s3://models/tiny-sd/v1"
V2 = "s3://models/tiny-sd/v2"
EXTERNAL_URL = "https://tiny-sd-models.apps.example.com"


def _deploy(kubeconfig: Path, model_uri: str = V1, **overrides: Any) -> DeployResult:
    options: dict[str, Any] = {
        "runtime_image": IMAGE,
        "storage_key": "aws-connection-models",
        "kubeconfig": kubeconfig,
        "poll_seconds": 0.02,
        "timeout": 5.0,
        "resources": Resources(cpu="2", memory="8Gi", gpus=1),
        "deployment_mode": "Serverless",
        **overrides,
    }
    return deploy_model(target="kserve", name="tiny-sd", model_uri=model_uri, kserve=KServeOptions(**options))


def _predictor(kube: FakeKube) -> dict[str, Any]:
    return kube.objects[("models", "tiny-sd")]["spec"]["predictor"]


def test_canary_rolls_v2_onto_v1_then_promotion_gives_it_all_traffic(
    kube: FakeKube, kubeconfig: Path
) -> None:
    first = _deploy(kubeconfig, V1)
    assert first.traffic == {"tiny-sd-predictor-00001": 100}

    canary = _deploy(kubeconfig, V2, canary_percent=10)

    assert not canary.created
    assert _predictor(kube)["canaryTrafficPercent"] == 10
    assert _predictor(kube)["model"]["storageUri"] == V2
    assert canary.traffic == {"tiny-sd-predictor-00002": 10, "tiny-sd-predictor-00001": 90}

    promoted = _deploy(kubeconfig, V2, canary_percent=100)

    assert "canaryTrafficPercent" not in _predictor(kube)
    assert _predictor(kube)["model"]["storageUri"] == V2
    assert promoted.traffic == {"tiny-sd-predictor-00003": 100}
    # The promotion patch removed the field explicitly (a merge patch only adds otherwise).
    assert kube.sent("PATCH")[-1].body["spec"]["predictor"]["canaryTrafficPercent"] is None


def test_canary_without_a_previous_revision_is_refused_before_anything_is_applied(
    kube: FakeKube, kubeconfig: Path
) -> None:
    with pytest.raises(ConfigError, match="does not exist, so there is no previous revision"):
        _deploy(kubeconfig, V2, canary_percent=10)

    assert kube.sent("POST") == [] and kube.sent("PATCH") == []


def test_canary_over_a_revision_that_is_not_ready_is_refused(kube: FakeKube, kubeconfig: Path) -> None:
    kube.ready_after_reads = None
    with pytest.raises(Exception, match="not Ready"):
        _deploy(kubeconfig, V1, timeout=0.2)
    patches_before = len(kube.sent("PATCH"))

    with pytest.raises(ConfigError, match="is not Ready"):
        _deploy(kubeconfig, V2, canary_percent=20)

    assert len(kube.sent("PATCH")) == patches_before


def _claim(kube: FakeKube, name: str, owners: list[dict[str, Any]] | None = None) -> None:
    metadata: dict[str, Any] = {"name": name, "namespace": "models"}
    if owners:
        metadata["ownerReferences"] = owners
    kube.others[("persistentvolumeclaims", "models", name)] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}}},
    }


def test_pvc_backed_deploy_serves_from_the_claim_without_a_data_connection(
    kube: FakeKube, kubeconfig: Path
) -> None:
    _claim(kube, "models-pvc")

    result = _deploy(
        kubeconfig,
        "pvc://models-pvc/tiny-sd/0123abcd",
        storage="pvc",
        storage_key=None,
        deployment_mode="RawDeployment",
    )

    model = _predictor(kube)["model"]
    assert model["storageUri"] == "pvc://models-pvc/tiny-sd/0123abcd"
    assert "storage" not in model
    assert result.endpoint_url == "http://tiny-sd-predictor.models.svc.cluster.local"


def test_pvc_that_does_not_exist_is_refused_before_anything_is_applied(
    kube: FakeKube, kubeconfig: Path
) -> None:
    with pytest.raises(ConfigError, match="no PersistentVolumeClaim models/missing"):
        _deploy(kubeconfig, "pvc://missing/tiny-sd", storage="pvc", storage_key=None)

    assert kube.sent("POST") == []


def test_pvc_of_a_volume_claim_template_is_refused(kube: FakeKube, kubeconfig: Path) -> None:
    owner = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "name": "import-x", "uid": "u1"}
    _claim(kube, "pvc-0a1b2c", owners=[owner])

    with pytest.raises(ConfigError, match="belongs to a PipelineRun"):
        _deploy(kubeconfig, "pvc://pvc-0a1b2c/tiny-sd", storage="pvc", storage_key=None)

    assert kube.sent("POST") == []


def test_exposed_authenticated_deploy_records_the_external_url_and_grants_token_access(
    kube: FakeKube, kubeconfig: Path
) -> None:
    result = _deploy(
        kubeconfig, deployment_mode="RawDeployment", expose=True, auth=True, cluster_local_url=True
    )

    assert result.endpoint_url == EXTERNAL_URL
    assert result.token_secret == "tiny-sd-sa-token"
    isvc = kube.objects[("models", "tiny-sd")]
    assert isvc["metadata"]["labels"]["networking.kserve.io/visibility"] == "exposed"
    assert isvc["metadata"]["annotations"]["security.opendatahub.io/enable-auth"] == "true"
    owner = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "name": "tiny-sd",
             "uid": isvc["metadata"]["uid"]}  # fmt: skip
    created = {(plural, name) for plural, _, name in kube.others}
    assert created == {
        ("serviceaccounts", "tiny-sd-sa"),
        ("roles", "tiny-sd-view-role"),
        ("rolebindings", "tiny-sd-view"),
        ("secrets", "tiny-sd-sa-token"),
    }
    assert all(obj["metadata"]["ownerReferences"] == [owner] for obj in kube.others.values())
    role = kube.others[("roles", "models", "tiny-sd-view-role")]
    assert role["rules"] == [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"],
         "resourceNames": ["tiny-sd"], "verbs": ["get"]}
    ]  # fmt: skip
    binding = kube.others[("rolebindings", "models", "tiny-sd-view")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tiny-sd-sa", "namespace": "models"}]
    assert binding["roleRef"]["name"] == "tiny-sd-view-role"
    token = kube.others[("secrets", "models", "tiny-sd-sa-token")]
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "tiny-sd-sa"}


def test_redeploy_with_auth_converges_and_dropping_it_removes_the_annotation(
    kube: FakeKube, kubeconfig: Path
) -> None:
    _deploy(kubeconfig, deployment_mode="RawDeployment", expose=True, auth=True)
    _deploy(kubeconfig, deployment_mode="RawDeployment", expose=True, auth=True)
    assert len(kube.others) == 4

    result = _deploy(kubeconfig, deployment_mode="RawDeployment")

    isvc = kube.objects[("models", "tiny-sd")]
    assert "security.opendatahub.io/enable-auth" not in isvc["metadata"]["annotations"]
    assert "networking.kserve.io/visibility" not in isvc["metadata"]["labels"]
    assert result.endpoint_url == "http://tiny-sd-predictor.models.svc.cluster.local"


def test_serverless_not_exposed_is_cluster_local(kube: FakeKube, kubeconfig: Path) -> None:
    result = _deploy(kubeconfig, cluster_local_url=False)

    labels = kube.objects[("models", "tiny-sd")]["metadata"]["labels"]
    assert labels["networking.knative.dev/visibility"] == "cluster-local"
    assert result.endpoint_url == "http://tiny-sd-predictor.models.svc.cluster.local"
