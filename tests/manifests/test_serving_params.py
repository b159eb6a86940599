"""Every serving choice is one name from pipeline param to Task param to `modelpipe deploy` flag."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from modelpipe.targets.serving_options import parse_node_selector, parse_tolerations

from tests.manifests import checks
from tests.manifests.schemas import crd_schema, schema_errors
from tests.manifests.test_bundle import SPECS
from tests.support.tools import REPO_ROOT, require_tool

SERVING = (
    "deploy-mode", "min-replicas", "max-replicas", "scale-metric", "scale-target", "cpu", "memory",
    "gpu-resource", "node-selector", "tolerations", "service-account", "expose", "auth", "storage",
    "canary-percent",
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require_tool("kubectl")


def _deploy_task_params(pipeline: str) -> dict[str, str]:
    spec = checks.pipelines_by_name(REPO_ROOT)[pipeline]["spec"]
    task = next(t for t in spec["tasks"] if t["name"] == "deploy-model")
    return {p["name"]: p["value"] for p in task["params"]}


def test_deploy_task_declares_every_serving_param_with_an_empty_default() -> None:
    params = {p["name"]: p for p in checks.tasks_by_name(REPO_ROOT)["deploy-model"]["spec"]["params"]}
    assert {name: params[name].get("default") for name in SERVING} == dict.fromkeys(SERVING, "")


def test_deploy_task_script_passes_each_param_to_the_flag_of_its_name() -> None:
    step = checks.tasks_by_name(REPO_ROOT)["deploy-model"]["spec"]["steps"][0]
    env = {e["name"]: e.get("value") for e in step["env"]}
    for name in SERVING:
        var = "PARAM_" + name.upper().replace("-", "_")
        assert env[var] == f"$(params.{name})"
        assert f'--{name} "${var}"' in step["script"]


@pytest.mark.parametrize("pipeline", ["model-import", "model-testing"])
def test_pipelines_hand_each_serving_param_to_deploy_under_the_same_name(pipeline: str) -> None:
    declared = {p["name"] for p in checks.pipelines_by_name(REPO_ROOT)[pipeline]["spec"]["params"]}
    passed = _deploy_task_params(pipeline)
    for name in SERVING:
        assert name in declared
        assert passed[name] == f"$(params.{name})"


def test_model_import_gives_deploy_the_model_workspace_for_pvc_storage() -> None:
    spec = checks.pipelines_by_name(REPO_ROOT)["model-import"]["spec"]
    task = next(t for t in spec["tasks"] if t["name"] == "deploy-model")
    assert task["workspaces"] == [{"name": "model", "workspace": "model"}]
    upload = next(t for t in spec["tasks"] if t["name"] == "upload-model")
    upload_dir = next(p["value"] for p in upload["params"] if p["name"] == "model-dir")
    assert _deploy_task_params("model-import")["model-dir"] == upload_dir


def test_readme_tkn_example_is_a_scaled_gpu_placed_exposed_deploy() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(tkn pipeline start model-import.*?)```", readme, re.DOTALL)
    assert block is not None
    words = shlex.split(block.group(1).replace("\\\n", " "))
    given = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--param")
    declared = {p["name"] for p in checks.pipelines_by_name(REPO_ROOT)["model-import"]["spec"]["params"]}
    assert set(given) <= declared
    assert int(given["min-replicas"]) > 1 and int(given["max-replicas"]) > int(given["min-replicas"])
    assert int(given["gpus"]) >= 1 and "nvidia.com/gpu" in given["node-selector"]
    assert parse_tolerations(given["tolerations"])[0]["key"] == "nvidia.com/gpu"
    assert parse_node_selector(given["node-selector"])
    assert given["expose"] == "true"


RUN_FLAGS = [
    "--deploy-mode", "Serverless", "--min-replicas", "0", "--max-replicas", "4",
    "--scale-metric", "concurrency", "--scale-target", "2", "--cpu", "8", "--memory", "48Gi",
    "--gpus", "2", "--gpu-resource", "nvidia.com/gpu",
    "--node-selector", "nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB",
    "--tolerations", "[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]",
    "--service-account", "models-sa", "--expose", "true", "--auth", "true", "--storage", "s3",
    "--canary-percent", "10",
]  # fmt: skip


def test_run_script_serving_flags_render_a_valid_pipelinerun() -> None:
    proc = subprocess.run(
        [str(REPO_ROOT / "run-model-import.sh"), "--dry-run", "--env-file", "/dev/null", *RUN_FLAGS],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    (run,) = checks.load_all(proc.stdout)
    schema = crd_schema(SPECS, "tekton.dev", "PipelineRun", "v1")
    assert schema is not None
    assert schema_errors(schema, run, "PipelineRun") == []
    given = {p["name"]: p["value"] for p in run["spec"]["params"]}
    declared = {p["name"] for p in checks.pipelines_by_name(REPO_ROOT)["model-import"]["spec"]["params"]}
    assert set(given) <= declared
    flags = dict(zip(RUN_FLAGS[::2], RUN_FLAGS[1::2], strict=True))
    expected = {f[2:]: v for f, v in flags.items()}  # each run-script flag is the param of its name
    assert {k: given[k] for k in expected} == expected


def _dry_run(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO_ROOT / "run-model-import.sh"), "--dry-run", "--env-file", "/dev/null", *flags],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_run_script_pvc_storage_binds_the_model_workspace_to_the_claim() -> None:
    proc = _dry_run("--storage", "pvc", "--model-pvc", "models-pvc")

    assert proc.returncode == 0, proc.stderr
    (run,) = checks.load_all(proc.stdout)
    schema = crd_schema(SPECS, "tekton.dev", "PipelineRun", "v1")
    assert schema is not None and schema_errors(schema, run, "PipelineRun") == []
    workspaces = {w["name"]: w for w in run["spec"]["workspaces"]}
    assert workspaces["model"] == {"name": "model", "persistentVolumeClaim": {"claimName": "models-pvc"}}
    assert "volumeClaimTemplate" in workspaces["source"]
    assert {"name": "storage", "value": "pvc"} in run["spec"]["params"]


def test_run_script_refuses_pvc_storage_without_a_claim() -> None:
    proc = _dry_run("--storage", "pvc")

    assert proc.returncode == 1
    assert "--storage pvc needs --model-pvc CLAIM" in proc.stderr
