"""Each serving option's exact InferenceService and access objects, CRD-valid; refused combinations."""

from __future__ import annotations

from typing import Any

import pytest
from modelpipe.cli import main
from modelpipe.errors import ConfigError
from modelpipe.steps.deploy import DeployResult
from modelpipe.targets import kserve_access
from modelpipe.targets.kserve import (
    IsvcSpec,
    Resources,
    build_inference_service,
    check_canary_base,
    merge_patch_body,
    validate_spec,
)
from modelpipe.targets.serving_options import (
    Placement,
    Scaling,
    parse_node_selector,
    parse_tolerations,
    pvc_model_uri,
)

from tests.manifests.schemas import CORE_MODELS, model_errors
from tests.support.fake_kube import validation_errors

IMAGE = "quay.io/org/diffusers-runtime@sha256:" + "0" * 64
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _spec(**overrides: Any) -> IsvcSpec:
    base: dict[str, Any] = {
        "name": "tiny-sd",
        "namespace": "models",
        "model_uri": "s3://models/tiny-sd/abc",
        "serving_runtime": "diffusers-runtime",
        "runtime_image": IMAGE,
        "storage_key": "aws-connection-models",
    }
    return IsvcSpec(**{**base, **overrides})


def _built(**overrides: Any) -> dict[str, Any]:
    spec = _spec(**overrides)
    validate_spec(spec)
    body = build_inference_service(spec)
    assert validation_errors(body) == []
    return body


def test_default_predictor_is_exactly_one_gpu_replica_from_s3() -> None:
    assert _built()["spec"]["predictor"] == {
        "minReplicas": 1,
        "maxReplicas": 1,
        "model": {
            "modelFormat": {"name": "diffusers"},
            "runtime": "diffusers-runtime",
            "storageUri": "s3://models/tiny-sd/abc",
            "storage": {"key": "aws-connection-models"},
            "image": IMAGE,
            "resources": {
                "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
            },
        },
    }


def test_scaling_sets_replica_bounds_metric_and_target() -> None:
    predictor = _built(scaling=Scaling(min_replicas=2, max_replicas=6, metric="cpu", target=70))["spec"][
        "predictor"
    ]
    assert {k: v for k, v in predictor.items() if k != "model"} == {
        "minReplicas": 2,
        "maxReplicas": 6,
        "scaleMetric": "cpu",
        "scaleTarget": 70,
    }


def test_serverless_scales_to_zero_on_concurrency() -> None:
    body = _built(
        deployment_mode="Serverless",
        scaling=Scaling(min_replicas=0, max_replicas=3, metric="concurrency", target=2),
    )
    predictor = body["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 3)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 2)


def test_resources_and_gpu_placement() -> None:
    body = _built(
        resources=Resources(cpu="8", memory="48Gi", gpus=2, gpu_resource="amd.com/gpu"),
        placement=Placement(
            node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}, tolerations=(GPU_TOLERATION,)
        ),
    )
    predictor = body["spec"]["predictor"]
    assert predictor["model"]["resources"] == {
        "requests": {"cpu": "8", "memory": "48Gi", "amd.com/gpu": "2"},
        "limits": {"cpu": "8", "memory": "48Gi", "amd.com/gpu": "2"},
    }
    assert predictor["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert predictor["tolerations"] == [GPU_TOLERATION]


def test_service_account_names_the_predictor_account() -> None:
    assert _built(service_account="models-sa")["spec"]["predictor"]["serviceAccountName"] == "models-sa"


@pytest.mark.parametrize(
    ("mode", "expose", "labels"),
    [
        ("RawDeployment", True, {"networking.kserve.io/visibility": "exposed"}),
        ("RawDeployment", False, {}),
        ("Serverless", True, {}),
        ("Serverless", False, {"networking.knative.dev/visibility": "cluster-local"}),
    ],
)
def test_expose_sets_the_visibility_label_the_platform_reads(
    mode: str, expose: bool, labels: dict[str, str]
) -> None:
    got = _built(deployment_mode=mode, expose=expose)["metadata"]["labels"]
    assert got == {"opendatahub.io/dashboard": "true", **labels}


def test_auth_sets_the_opendatahub_annotation() -> None:
    annotations = _built(auth=True)["metadata"]["annotations"]
    assert annotations == {
        "openshift.io/display-name": "tiny-sd",
        "serving.kserve.io/deploymentMode": "RawDeployment",
        "security.opendatahub.io/enable-auth": "true",
    }


def test_pvc_storage_serves_the_claim_without_a_storage_key() -> None:
    model = _built(model_uri="pvc://models-pvc/tiny-sd/abc", storage="pvc", storage_key=None)["spec"][
        "predictor"
    ]["model"]
    assert model["storageUri"] == "pvc://models-pvc/tiny-sd/abc"
    assert "storage" not in model


def test_canary_sets_the_traffic_percent_and_100_promotes() -> None:
    assert (
        _built(deployment_mode="Serverless", canary_percent=10)["spec"]["predictor"]["canaryTrafficPercent"]
        == 10
    )
    assert (
        "canaryTrafficPercent"
        not in _built(deployment_mode="Serverless", canary_percent=100)["spec"]["predictor"]
    )


def test_access_objects_are_valid_kubernetes_objects_owned_by_the_isvc() -> None:
    isvc = {**_built(auth=True), "metadata": {"name": "tiny-sd", "namespace": "models", "uid": "u-1"}}
    objects = kserve_access.build_access_objects(isvc)

    assert [o["kind"] for o in objects] == ["ServiceAccount", "Role", "RoleBinding", "Secret"]
    for obj in objects:
        assert list(model_errors(obj, CORE_MODELS[(obj["apiVersion"], obj["kind"])], obj["kind"])) == []
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert objects[1]["rules"][0]["resourceNames"] == ["tiny-sd"]
    assert objects[3]["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "tiny-sd-sa"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scaling": Scaling(min_replicas=0)}, "scale to zero) needs --deploy-mode Serverless"),
        ({"scaling": Scaling(min_replicas=3, max_replicas=2)}, "--max-replicas 2 must be at least 1"),
        ({"scaling": Scaling(metric="rps")}, "--scale-metric rps needs --deploy-mode Serverless"),
        ({"scaling": Scaling(metric="gpu")}, "--scale-metric 'gpu' unknown"),
        ({"scaling": Scaling(metric="cpu", target=150)}, "never exceeds 100"),
        ({"scaling": Scaling(target=0)}, "--scale-target 0 must be positive"),
        ({"canary_percent": 10}, "--canary-percent needs --deploy-mode Serverless"),
        ({"deployment_mode": "Serverless", "canary_percent": 0}, "must be 1-100"),
        ({"storage": "pvc"}, "is not a pvc:// URI"),
        ({"storage": "pvc", "model_uri": "pvc://claim/m"}, "a data connection (storage key) does not apply"),
        ({"storage": "nfs"}, "--storage 'nfs' unknown"),
        ({"model_uri": "pvc://claim/m"}, "is not an s3:// URI"),
        ({"deployment_mode": "Standard"}, "--deploy-mode 'Standard' unknown"),
        ({"resources": Resources(gpus=-1)}, "--gpus -1 must be 0 or more"),
    ],
)
def test_invalid_combinations_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_spec(_spec(**overrides))


def test_tolerations_parse_from_yaml_or_json() -> None:
    text = "[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]"
    assert parse_tolerations(text) == (GPU_TOLERATION,)
    assert parse_tolerations('[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]') == (
        GPU_TOLERATION,
    )
    assert parse_tolerations("") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{key: nvidia.com/gpu", "is not valid YAML"),
        ("nvidia.com/gpu", "must be a YAML list"),
        ("[{key: a, operater: Exists}]", "unknown field"),
        ("[{key: a, operator: Exists, value: b}]", "Exists takes no value"),
        ("[{key: a, effect: NoRun}]", "effect 'NoRun' unknown"),
        ("[{key: a, effect: NoSchedule, tolerationSeconds: 30}]", "goes with effect NoExecute"),
        ("[{operator: Equal, value: b}]", "an empty key needs operator Exists"),
    ],
)
def test_bad_tolerations_are_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_tolerations(text)


def test_node_selector_parses_label_pairs_and_refuses_bad_ones() -> None:
    assert parse_node_selector("nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB, zone=a") == {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
        "zone": "a",
    }
    assert parse_node_selector("") == {}
    for bad in ("gpu", "bad key=1", "a=b,a=c", "k=has space"):
        with pytest.raises(ConfigError, match="--node-selector"):
            parse_node_selector(bad)


def test_pvc_model_uri_is_the_folder_relative_to_the_workspace() -> None:
    assert (
        pvc_model_uri("models-pvc", "/workspace/model", "/workspace/model/tiny-sd")
        == "pvc://models-pvc/tiny-sd"
    )
    with pytest.raises(ConfigError, match="bound to a PersistentVolumeClaim"):
        pvc_model_uri("", "/workspace/model", "/workspace/model/tiny-sd")
    with pytest.raises(ConfigError, match="not inside the model workspace"):
        pvc_model_uri("c", "/workspace/model", "/tmp/tiny-sd")


def test_merge_patch_removes_owned_fields_the_new_body_drops() -> None:
    old = _built(
        deployment_mode="Serverless",
        canary_percent=10,
        auth=True,
        placement=Placement(tolerations=(GPU_TOLERATION,)),
    )
    new = _built(deployment_mode="Serverless")
    patch = merge_patch_body(old, new)
    assert patch["spec"]["predictor"]["canaryTrafficPercent"] is None
    assert patch["spec"]["predictor"]["tolerations"] is None
    assert patch["metadata"]["annotations"]["security.opendatahub.io/enable-auth"] is None
    assert "nodeSelector" not in patch["spec"]["predictor"]  # never set, nothing to remove


def test_canary_base_must_exist() -> None:
    spec = _spec(deployment_mode="Serverless", canary_percent=10)
    with pytest.raises(ConfigError, match="no previous revision"):
        check_canary_base(None, spec)
    check_canary_base(None, _spec(deployment_mode="Serverless", canary_percent=100))


SERVING_FLAGS = [
    "--deploy-mode", "Serverless", "--min-replicas", "0", "--max-replicas", "4",
    "--scale-metric", "concurrency", "--scale-target", "2", "--cpu", "8", "--memory", "48Gi",
    "--gpus", "2", "--gpu-resource", "nvidia.com/gpu",
    "--node-selector", "nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB",
    "--tolerations", "[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]",
    "--service-account", "models-sa", "--expose", "true", "--auth", "true",
    "--storage", "pvc", "--model-claim", "models-pvc", "--model-dir", "model", "--canary-percent", "10",
]  # fmt: skip


def _cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "modelpipe.steps.deploy.deploy_model",
        lambda **kwargs: calls.append(kwargs) or DeployResult("http://x", "tiny-sd"),
    )
    monkeypatch.delenv("MODEL_REGISTRY_URL", raising=False)
    argv_all = ["deploy", "--target", "kserve", "--name", "tiny-sd", "--model-uri", "s3://b/m", *argv]
    return main(argv_all), calls


def test_cli_maps_every_serving_flag_to_typed_options(monkeypatch: pytest.MonkeyPatch) -> None:
    code, calls = _cli(monkeypatch, "--data-connection", "models", *SERVING_FLAGS)

    assert code == 0
    (call,) = calls
    options = call["kserve"]
    assert call["model_uri"] == "pvc://models-pvc/model"
    assert options.deployment_mode == "Serverless"
    assert options.scaling == Scaling(min_replicas=0, max_replicas=4, metric="concurrency", target=2)
    assert options.resources == Resources(cpu="8", memory="48Gi", gpus=2, gpu_resource="nvidia.com/gpu")
    assert options.placement == Placement(
        node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}, tolerations=(GPU_TOLERATION,)
    )
    assert (options.service_account, options.expose, options.auth) == ("models-sa", True, True)
    assert (options.storage, options.storage_key, options.canary_percent) == ("pvc", None, 10)


def test_cli_empty_serving_flags_mean_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    empty = [arg if arg.startswith("--") else "" for arg in SERVING_FLAGS]
    code, calls = _cli(monkeypatch, "--data-connection", "models", *empty)

    assert code == 0
    options = calls[0]["kserve"]
    assert calls[0]["model_uri"] == "s3://b/m"
    assert options.deployment_mode == "RawDeployment"
    assert options.scaling == Scaling()
    assert options.resources == Resources()
    assert options.placement == Placement()
    assert (options.service_account, options.expose, options.auth) == (None, False, False)
    assert (options.storage, options.storage_key, options.canary_percent) == (
        "s3",
        "aws-connection-models",
        None,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tolerations", "[{key: a"], "--tolerations is not valid YAML"),
        (["--node-selector", "gpu"], "--node-selector 'gpu' is not LABEL=VALUE"),
        (["--storage", "pvc"], "--storage pvc needs --model-uri pvc://CLAIM/PATH"),
    ],
)
def test_cli_bad_serving_values_fail_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, calls = _cli(monkeypatch, *argv)
    assert (code, calls) == (1, [])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--expose", "yes"], ["--min-replicas", "one"], ["--deploy-mode", "Raw"]])
def test_cli_malformed_serving_values_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        _cli(monkeypatch, *argv)
    assert exc.value.code == 2
