"""deploy for text-generation models: vLLM options, the LLM InferenceService, the local vLLM command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelpipe.cli import main
from modelpipe.errors import ConfigError
from modelpipe.steps.deploy import SERVING_RUNTIMES, DeployResult, KServeOptions, deploy_model
from modelpipe.targets import local_vllm
from modelpipe.targets.kserve import IsvcSpec, Resources, build_inference_service
from modelpipe.targets.vllm import VllmOptions, parse_vllm_options

from tests.support.fake_kube import validation_errors

ALL = VllmOptions(tensor_parallel_size=2, max_model_len=4096, dtype="bfloat16", gpu_memory_utilization=0.9)


def _parse(**flags: str) -> VllmOptions:
    base = {"tensor_parallel_size": "", "max_model_len": "", "dtype": "", "gpu_memory_utilization": ""}
    return parse_vllm_options(**(base | flags))


def test_empty_flags_leave_every_vllm_default() -> None:
    assert _parse() == VllmOptions()
    assert VllmOptions().server_args() == []


def test_set_options_become_vllm_flags() -> None:
    assert ALL.server_args() == [
        "--tensor-parallel-size=2",
        "--max-model-len=4096",
        "--dtype=bfloat16",
        "--gpu-memory-utilization=0.9",
    ]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"tensor_parallel_size": "0"}, "--tensor-parallel-size 0 must be 1 or more"),
        ({"tensor_parallel_size": "two"}, "--tensor-parallel-size 'two' is not an integer"),
        ({"max_model_len": "-1"}, "--max-model-len -1 must be a positive token count"),
        ({"dtype": "fp8"}, "--dtype 'fp8' is not a vLLM dtype"),
        ({"gpu_memory_utilization": "1.5"}, r"--gpu-memory-utilization 1.5 must be in \(0, 1\]"),
        ({"gpu_memory_utilization": "most"}, "--gpu-memory-utilization 'most' is not a number"),
    ],
)
def test_bad_vllm_flags_are_refused_naming_the_flag(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse(**flags)


def test_llm_inference_service_uses_the_vllm_runtime_format_and_args() -> None:
    spec = IsvcSpec(
        name="qwen",
        namespace="models",
        model_uri="s3://models/qwen/v1",
        serving_runtime=SERVING_RUNTIMES["text-generation"],
        model_format="vLLM",
        runtime_args=tuple(ALL.server_args()),
        storage_key="conn",
        resources=Resources(gpus=2),
    )
    body = build_inference_service(spec)
    model = body["spec"]["predictor"]["model"]
    assert (model["runtime"], model["modelFormat"]) == ("vllm-runtime", {"name": "vLLM"})
    assert model["args"] == ALL.server_args()
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert validation_errors(body) == []


def test_vllm_options_for_a_text_to_image_model_are_refused() -> None:
    with pytest.raises(ConfigError, match="apply to text-generation models only"):
        deploy_model(target="kserve", name="sd", model_uri="s3://b/p", vllm=VllmOptions(dtype="float16"))


def test_more_tensor_parallel_ranks_than_gpus_is_refused_before_any_cluster_call() -> None:
    options = KServeOptions(namespace="models", resources=Resources(gpus=1))
    with pytest.raises(ConfigError, match="--tensor-parallel-size 2 needs 2 GPUs but --gpus is 1"):
        deploy_model(
            target="kserve",
            name="qwen",
            model_uri="s3://b/p",
            kserve=options,
            model_kind="text-generation",
            vllm=VllmOptions(tensor_parallel_size=2),
        )


def test_local_vllm_runs_the_openai_server_in_float32_eager_on_loopback() -> None:
    args = local_vllm.local_args(VllmOptions(max_model_len=256), ["--max-num-seqs=4"])
    command = local_vllm.vllm_command("/venv/bin/python", Path("/state/model"), "tiny-llm", 8001, args)
    assert command[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--served-model-name") + 1] == "tiny-llm"
    assert command[-6:] == [
        "--max-model-len=256",
        "--dtype=float32",
        "--enforce-eager",
        "--optimization-level",
        "0",
        "--max-num-seqs=4",
    ]
    assert "--dtype=bfloat16" in local_vllm.local_args(VllmOptions(dtype="bfloat16"), [])


def test_local_vllm_environment_is_offline_and_carries_no_secrets() -> None:
    base = {
        "PATH": "/bin",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "HF_TOKEN": "hf_x",
        "VLLM_CPU_KVCACHE_SPACE": "4",
    }
    env = local_vllm.vllm_env(base)
    assert "AWS_SECRET_ACCESS_KEY" not in env and "HF_TOKEN" not in env
    assert (env["HF_HUB_OFFLINE"], env["VLLM_CPU_KVCACHE_SPACE"], env["PATH"]) == ("1", "4", "/bin")


def test_stop_without_a_recorded_vllm_reports_nothing_running(tmp_path: Path) -> None:
    assert local_vllm.stop_local_vllm(tmp_path) is False


def test_cli_passes_kind_and_vllm_options_to_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_deploy(**kwargs: Any) -> DeployResult:
        calls.append(kwargs)
        return DeployResult("http://127.0.0.1:8099", "tiny-llm", None, runtime_pid=1)

    monkeypatch.setattr("modelpipe.steps.deploy.deploy_model", fake_deploy)
    argv = ["deploy", "--target", "local", "--name", "tiny-llm", "--model-uri", "s3://b/p"]
    argv += ["--state-dir", str(tmp_path), "--model-kind", "text-generation", "--max-model-len", "256"]
    argv += ["--dtype", "", "--tensor-parallel-size", ""]
    assert main(argv) == 0
    (call,) = calls
    assert (call["model_kind"], call["vllm"]) == ("text-generation", VllmOptions(max_model_len=256))
    assert call["kserve"].serving_runtime is None, "empty --serving-runtime means the kind's runtime"


def test_cli_unknown_model_kind_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "deploy",
        "--target",
        "local",
        "--name",
        "n",
        "--model-uri",
        "s3://b/p",
        "--state-dir",
        str(tmp_path),
    ]
    assert main([*argv, "--model-kind", "llm"]) == 1
    assert "--model-kind 'llm' is not a model kind" in capsys.readouterr().err


def test_the_built_diffusers_image_is_not_applied_to_a_language_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[IsvcSpec] = []

    def stop_after_validation(spec: IsvcSpec) -> None:
        built.append(spec)
        raise ConfigError("stop here")

    monkeypatch.setattr("modelpipe.targets.kserve.validate_spec", stop_after_validation)
    options = KServeOptions(
        namespace="models", runtime_image="quay.io/x/diffusers-runtime@sha256:" + "0" * 64
    )
    with pytest.raises(ConfigError, match="stop here"):
        deploy_model(
            target="kserve", name="qwen", model_uri="s3://b/p", kserve=options, model_kind="text-generation"
        )
    (spec,) = built
    assert (spec.runtime_image, spec.serving_runtime, spec.model_format) == (None, "vllm-runtime", "vLLM")
