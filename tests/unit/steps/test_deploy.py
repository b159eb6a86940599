"""InferenceService body, spec checks, readiness logic, local runtime env and the deploy CLI glue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelpipe import processes
from modelpipe.cli import main
from modelpipe.config import RegistrySettings, S3Settings
from modelpipe.errors import ConfigError
from modelpipe.steps.deploy import DeployResult
from modelpipe.targets import kserve, local_process
from modelpipe.targets.kserve import (
    IsvcSpec,
    Resources,
    build_inference_service,
    validate_spec,
)
from pydantic import SecretStr

from tests.support.fake_kube import validation_errors

IMAGE = "quay.io/org/diffusers-runtime@sha256:" + "0" * 64


def _spec(**overrides: Any) -> IsvcSpec:
    base: dict[str, Any] = {
        "name": "tiny-sd",
        "namespace": "models",
        "model_uri": "s3://models/tiny-sd/abc",
        "serving_runtime": "diffusers-runtime",
        "runtime_image": IMAGE,
        "storage_key": "conn",
        "service_account": "models-sa",
        "registered_model_id": "1",
        "model_version_id": "2",
        "registry_name": "modelregistry-public",
    }
    return IsvcSpec(**{**base, **overrides})


@pytest.mark.parametrize("mode", ["RawDeployment", "Serverless"])
def test_isvc_body_is_valid_against_the_strict_kserve_crd(mode: str) -> None:
    assert validation_errors(build_inference_service(_spec(deployment_mode=mode))) == []


def test_strict_crd_check_catches_a_misspelt_field() -> None:
    body = build_inference_service(_spec())
    body["spec"]["predictor"]["model"]["modelformat"] = {"name": "diffusers"}
    assert any("modelformat" in error for error in validation_errors(body))


def test_serverless_adds_the_dashboard_istio_annotations() -> None:
    annotations = build_inference_service(_spec(deployment_mode="Serverless"))["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Serverless"
    assert annotations["sidecar.istio.io/inject"] == "true"


def test_no_registry_ids_means_no_registry_labels_and_cpu_only_has_no_gpu() -> None:
    body = build_inference_service(
        _spec(registered_model_id=None, model_version_id=None, resources=Resources(gpus=0))
    )
    assert body["metadata"]["labels"] == {"opendatahub.io/dashboard": "true"}
    assert "nvidia.com/gpu" not in body["spec"]["predictor"]["model"]["resources"]["limits"]
    assert body["spec"]["predictor"]["serviceAccountName"] == "models-sa"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"runtime_image": "quay.io/org/diffusers-runtime:latest"},
            "not pinned by digest",
        ),
        ({"name": "Tiny_SD"}, "not a DNS-1035 label"),
        ({"name": "a" * 54}, "longer than 53"),
        ({"model_uri": "https://bucket/x"}, "not an s3:// URI"),
        ({"deployment_mode": "ModelMesh"}, "unknown"),
    ],
)
def test_bad_spec_is_refused_naming_the_flag(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_spec(_spec(**overrides))


def _isvc(generation: int, observed: int, ready: str, url: str | None = "https://x") -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": observed,
            "url": url,
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


@pytest.mark.parametrize(
    ("isvc", "ready"),
    [
        (_isvc(1, 1, "True"), True),
        (_isvc(2, 1, "True"), False),  # Ready describes the previous spec
        (_isvc(1, 1, "False"), False),
        (_isvc(1, 1, "True", url=None), False),
    ],
)
def test_ready_needs_current_generation_ready_condition_and_url(isvc: dict[str, Any], ready: bool) -> None:
    assert kserve._is_ready(isvc, isvc["metadata"]["generation"]) is ready


def test_conditions_are_described_with_reason_message_and_model_failure() -> None:
    isvc = {
        "status": {
            "conditions": [
                {
                    "type": "PredictorReady",
                    "status": "False",
                    "reason": "Crash",
                    "message": "OOMKilled",
                },
                {"type": "Ready", "status": "Unknown"},
            ],
            "modelStatus": {"lastFailureInfo": {"message": "CUDA out of memory"}},
        }
    }
    assert kserve.describe_conditions(isvc) == (
        "PredictorReady=False (Crash: OOMKilled); Ready=Unknown; model failure: CUDA out of memory"
    )
    assert kserve.describe_conditions({}) == "no conditions reported yet"


def test_endpoint_url_prefers_status_url_unless_cluster_local() -> None:
    isvc = {"status": {"url": "https://ext", "address": {"url": "http://int.svc"}}}
    assert kserve.endpoint_url(isvc) == "https://ext"
    assert kserve.endpoint_url(isvc, cluster_local=True) == "http://int.svc"


def test_runtime_env_sets_storage_uri_and_data_connection_and_drops_other_secrets() -> None:
    s3 = S3Settings(
        "http://127.0.0.1:9000",
        SecretStr("AKID"),
        SecretStr("SECRET"),
        "eu-west-1",
        "models",
    )
    env = local_process.runtime_env(
        "s3://models/x",
        s3,
        {"PATH": "/bin", "HF_TOKEN": "hf_abc", "MODEL_REGISTRY_TOKEN": "t0ken"},
    )
    assert env == {
        "PATH": "/bin",
        "STORAGE_URI": "s3://models/x",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_S3_ENDPOINT": "http://127.0.0.1:9000",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_S3_BUCKET": "models",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "SECRET",
    }


def test_runtime_command_uses_kserve_flags_and_disables_grpc() -> None:
    command = local_process.runtime_command("m", 8123, ["--max_batch_size", "2"], "/py", Path("/st/model"))
    assert command == [
        "/py",
        "-m",
        "diffusers_runtime",
        "--model_name",
        "m",
        "--http_port",
        "8123",
        "--enable_grpc",
        "false",
        "--download_dir",
        "/st/model",
        "--max_batch_size",
        "2",
    ]


def test_runtime_command_is_accepted_by_the_runtime_parser() -> None:
    from diffusers_runtime.__main__ import parse_args

    command = local_process.runtime_command("m", 8123, ["--max_batch_size=2"], "/py", Path("/st/model"))
    args = parse_args([*command[3:], "--model_dir", "s3://b/p"])
    assert (args.model_name, args.http_port, args.enable_grpc, args.max_batch_size) == ("m", 8123, False, 2)


def test_stop_without_state_reports_nothing_running(tmp_path: Path) -> None:
    assert local_process.stop_local_runtime(tmp_path) is False


def test_stop_refuses_a_pid_that_is_not_the_runtime() -> None:
    import os

    with pytest.raises(Exception, match="not a diffusers_runtime process"):
        local_process.stop_local_runtime(os.getpid())


def test_cli_maps_flags_to_deploy_model_and_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_deploy(**kwargs: Any) -> DeployResult:
        calls.append(kwargs)
        return DeployResult("http://127.0.0.1:8099", "tiny-sd", "7", runtime_pid=4242)

    monkeypatch.setattr("modelpipe.steps.deploy.deploy_model", fake_deploy)
    monkeypatch.setenv("MODEL_REGISTRY_URL", "http://127.0.0.1:1")
    code = main(
        [
            "deploy",
            "--target",
            "local",
            "--name",
            "tiny-sd",
            "--model-uri",
            "s3://b/p",
            "--port",
            "8099",
            "--state-dir",
            str(tmp_path / "st"),
            "--registered-model-id",
            "1",
            "--model-version-id",
            "2",
            "--runtime-arg=--max_batch_size=2",
            "--timeout",
            "30",
            "--results-dir",
            str(tmp_path / "r"),
        ]
    )

    assert code == 0
    (call,) = calls
    assert (call["target"], call["name"], call["model_uri"]) == (
        "local",
        "tiny-sd",
        "s3://b/p",
    )
    assert call["registry_settings"].url == "http://127.0.0.1:1"
    assert (call["local"].port, call["local"].timeout, call["local"].runtime_args) == (
        8099,
        30.0,
        ("--max_batch_size=2",),
    )
    assert (tmp_path / "r" / "RUNTIME_PID").read_text() == "4242"
    assert (tmp_path / "r" / "INFERENCE_SERVICE_ID").read_text() == "7"
    assert "ENDPOINT_URL: http://127.0.0.1:8099" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--target", "local", "--name", "n", "--model-uri", "s3://b/p"],
            "needs --state-dir",
        ),
        (["--target", "kserve", "--name", "n"], "--model-uri is required"),
        (
            ["--target", "kserve", "--stop"],
            "--stop works with --target local --state-dir",
        ),
    ],
)
def test_cli_flag_combinations_are_checked(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", *argv]) == 1
    assert message in capsys.readouterr().err


def test_cli_treats_empty_registry_ids_as_not_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "modelpipe.steps.deploy.deploy_model",
        lambda **kwargs: calls.append(kwargs) or DeployResult("http://x", "n"),
    )
    code = main(
        [
            "deploy",
            "--target",
            "kserve",
            "--name",
            "n",
            "--model-uri",
            "s3://b/p",
            "--registered-model-id",
            "",
            "--model-version-id",
            "",
        ]
    )
    assert code == 0
    assert (calls[0]["registered_model_id"], calls[0]["model_version_id"]) == (None, None)


def test_log_tail_shows_only_this_start_and_masks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-key")
    log = tmp_path / "runtime.log"
    log.write_text("old run: failed\n")
    offset = log.stat().st_size
    with log.open("a") as handle:
        handle.write("".join(f"line {n}\n" for n in range(30)) + "denied for very-secret-key\n")

    tail = processes.log_tail(log, 5, offset=offset)

    assert tail.splitlines() == ["line 26", "line 27", "line 28", "line 29", "denied for ***"]
    assert "old run" not in processes.log_tail(log, 100, offset=offset)


def _kubeconfig(path: Path) -> Path:
    path.write_text(
        """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts:
  - {name: dev, context: {cluster: c, user: u, namespace: dev-models}}
  - {name: prod, context: {cluster: c, user: u, namespace: prod-models}}
current-context: dev
"""
    )
    return path


def test_default_namespace_is_the_current_contexts(tmp_path: Path) -> None:
    assert kserve.default_namespace(_kubeconfig(tmp_path / "kubeconfig")) == "dev-models"


def test_default_namespace_follows_an_explicit_kube_context(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path / "kubeconfig")
    assert kserve.default_namespace(kubeconfig, "prod") == "prod-models"


def test_ids_without_a_registry_url_deploy_without_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelpipe.steps import deploy as step

    started: list[dict[str, Any]] = []

    def fake_start(**kwargs: Any) -> local_process.LocalRuntime:
        started.append(kwargs)
        return local_process.LocalRuntime(
            pid=4242,
            endpoint_url="http://127.0.0.1:8099",
            model_name="m",
            log_file=tmp_path / "log",
            started=True,
        )

    monkeypatch.setattr(local_process, "start_local_runtime", fake_start)
    monkeypatch.setattr(step, "connect_registry", lambda settings: pytest.fail("must not connect"))
    result = step.deploy_model(
        target="local",
        name="m",
        model_uri="s3://b/p",
        registered_model_id="1",
        model_version_id="2",
        registry_settings=RegistrySettings(url=None, token=None, author="tests"),
        local=step.LocalOptions(state_dir=tmp_path, s3=S3Settings(None, None, None, "us-east-1", None)),
    )
    assert (result.endpoint_url, result.runtime_pid, result.inference_service_id) == (
        "http://127.0.0.1:8099",
        4242,
        None,
    )
    assert len(started) == 1


def test_only_one_registry_id_is_refused_before_deploying(tmp_path: Path) -> None:
    from modelpipe.steps import deploy as step

    with pytest.raises(ConfigError, match="go together"):
        step.deploy_model(target="local", name="m", model_uri="s3://b/p", registered_model_id="1")


@pytest.mark.parametrize("timeout", [0.0, -5.0, float("inf")])
def test_deploy_step_refuses_a_timeout_that_is_not_positive(timeout: float, tmp_path: Path) -> None:
    from modelpipe.steps.deploy import LocalOptions, deploy_model

    local = LocalOptions(state_dir=tmp_path, s3=S3Settings.from_env({}), timeout=timeout)
    with pytest.raises(ConfigError, match=r"--timeout .* must be positive"):
        deploy_model(target="local", name="n", model_uri="s3://b/p", local=local)


def test_cli_timeout_reaches_the_step_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["deploy", "--target", "local", "--name", "n", "--model-uri", "s3://b/p", "--timeout", "0"]
    assert main([*argv, "--state-dir", str(tmp_path)]) == 1
    assert "--timeout 0.0 must be positive" in capsys.readouterr().err
