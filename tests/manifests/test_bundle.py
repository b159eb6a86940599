"""The Tekton/GitOps bundle passes every offline check, and each check catches a deliberately broken copy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.llm import require_vllm
from tests.manifests import checks
from tests.support.tools import REPO_ROOT, SPECS_DIR, require_tool

SPECS = SPECS_DIR


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require_tool("kubectl")


def _shellcheck(root: Path) -> checks.Problems:
    return checks.check_shellcheck(root, require_tool("shellcheck"))


def _hadolint(root: Path) -> checks.Problems:
    return checks.check_hadolint(root, require_tool("hadolint"))


def _tekton_lint(root: Path) -> checks.Problems:
    if not checks.TEKTON_LINT.exists():
        require_tool("tekton-lint")  # skips locally / fails in CI with the fix (make setup)
    return checks.check_tekton_lint(root)


def _vllm_runtime_args(root: Path) -> checks.Problems:
    return checks.check_vllm_runtime_args(root, require_vllm())


def _crd_schemas(root: Path) -> checks.Problems:
    return checks.check_crd_schemas(root, SPECS)


CHECKS: dict[str, Callable[[Path], checks.Problems]] = {
    "kustomize_renders": checks.check_kustomize_renders,
    "crd_schemas": _crd_schemas,
    "core_objects": checks.check_core_objects,
    "tekton_lint": _tekton_lint,
    "shellcheck": _shellcheck,
    "hadolint": _hadolint,
    "pipelineruns_match_pipelines": checks.check_pipelineruns_match_pipelines,
    "pipelines_match_tasks": checks.check_pipelines_match_tasks,
    "no_params_in_scripts": checks.check_no_params_in_scripts,
    "no_latest_images": checks.check_no_latest_images,
    "everything_described": checks.check_everything_described,
    "names": checks.check_names,
    "step_convention": checks.check_step_convention,
    "pipeline_policies": checks.check_pipeline_policies,
    "secrets_agree": checks.check_secrets_agree,
    "settings_offered": checks.check_settings_offered,
    "task_flags_exist": checks.check_task_flags_exist,
    "monitoring_metrics": checks.check_monitoring_metrics,
    "tasks_readme": checks.check_tasks_readme,
    "pipelines_readme": checks.check_pipelines_readme,
    "task_params_are_flags": checks.check_task_params_are_flags,
    "thin_scripts": checks.check_thin_scripts,
    "docs_agree_with_code": checks.check_docs_agree_with_code,
    "task_defaults_match_flags": checks.check_task_defaults_match_flags,
    "pipeline_defaults_match_tasks": checks.check_pipeline_defaults_match_tasks,
    "pipeline_params_match_task_params": checks.check_pipeline_params_match_task_params,
    "runtime_args": checks.check_runtime_args,
    "vllm_runtime_args": _vllm_runtime_args,
    "inference_service_fits_runtime": lambda root: checks.check_inference_service_fits_runtime(root, SPECS),
}
# Import the modelpipe CLI / the runtime (kserve, torch) / vLLM.
SLOW = {
    "task_flags_exist",
    "task_params_are_flags",
    "task_defaults_match_flags",
    "runtime_args",
    "vllm_runtime_args",
}


def _marks(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] if name in SLOW else []


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in CHECKS])
def test_repository_passes_check(name: str) -> None:
    assert CHECKS[name](REPO_ROOT) == []


def edit(relative: str, old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    """A mutation replacing ``old`` by ``new`` in one file of the copy; fails if ``old`` is absent."""

    def mutate(root: Path) -> None:
        path = root / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"stale mutation: {old!r} not in {relative}"
        path.write_text(text.replace(old, new, count), encoding="utf-8")

    return mutate


UNUSED_PARAM = """  params:
    - name: unused-knob
      type: string
      default: ""
      description: Declared but never used.
"""

# (check, mutation, text the report must contain)
BROKEN: list[tuple[str, str, Callable[[Path], None], str]] = [
    (
        "runtime_args",
        "misspelt runtime flag",
        edit("gitops/base/servingruntime.yaml", "--max_batch_size=4", "--max-batch-size=4"),
        "args rejected",
    ),
    (
        "runtime_args",
        "readiness on the wrong path",
        edit("gitops/base/servingruntime.yaml", "/v2/models/{{.Name}}/ready", "/v2/health/ready"),
        "readinessProbe",
    ),
    (
        "vllm_runtime_args",
        "misspelt vLLM flag",
        edit("gitops/base/servingruntime-vllm.yaml", "--served-model-name=", "--serve-model-name="),
        "args rejected by vLLM",
    ),
    (
        "vllm_runtime_args",
        "readiness on a path vLLM does not serve",
        edit(
            "gitops/base/servingruntime-vllm.yaml",
            "path: /health\n          port: 8080\n        periodSeconds: 10\n        timeoutSeconds: 5",
            "path: /ready\n          port: 8080\n        periodSeconds: 10\n        timeoutSeconds: 5",
        ),
        "readinessProbe must GET /health",
    ),
    (
        "inference_service_fits_runtime",
        "vLLM format dropped from its runtime",
        edit("gitops/base/servingruntime-vllm.yaml", "    - name: vLLM\n", "    - name: vllm-cuda\n"),
        "'vLLM' not supported",
    ),
    (
        "tasks_readme",
        "documented default drifted from the YAML",
        edit("tasks/README.md", "| `requests` | `16` |", "| `requests` | `32` |"),
        "documented default `32` != YAML `16`",
    ),
    (
        "pipelines_readme",
        "documented default drifted from the YAML",
        edit("pipelines/README.md", "| `deploy` | `true` |", "| `deploy` | `false` |"),
        "documented default `false` != YAML `true`",
    ),
    (
        "task_params_are_flags",
        "param the script leaves out",
        edit("tasks/register-model.yaml", '--description "$PARAM_DESCRIPTION" ', ""),
        '--description "$PARAM_DESCRIPTION"',
    ),
    (
        "task_params_are_flags",
        "param named unlike its flag",
        edit("tasks/upload-model.yaml", "- name: model-uri\n", "- name: dest\n"),
        "param 'dest' is no `modelpipe upload` flag --dest",
    ),
    (
        "task_defaults_match_flags",
        "Task default unlike the flag's",
        edit("tasks/benchmark-model.yaml", 'default: "16"', 'default: "32"'),
        "param 'requests' defaults to '32', `modelpipe benchmark --requests` to 16",
    ),
    (
        "pipeline_defaults_match_tasks",
        "pipeline default unlike the Task's",
        edit("pipelines/model-testing.yaml", 'default: "16"', 'default: "32"'),
        "param 'requests' defaults to '32', Task benchmark-model to '16'",
    ),
    (
        "docs_agree_with_code",
        "a gate example that cannot fail",
        edit("tasks/README.md", "-p min-clip-score=20", "-p min-clip-score=0.25"),
        "min-clip-score=0.25 can never fail",
    ),
    (
        "thin_scripts",
        "a conditional in a Task script",
        edit(
            "tasks/download-model.yaml",
            "        set -eu\n",
            '        set -eu\n        [ -n "$PARAM_VARIANT" ] && :\n',
        ),
        "shell logic '&&'",
    ),
    (
        "pipeline_params_match_task_params",
        "a param given twice (what a bad merge leaves)",
        edit(
            "pipelines/model-testing.yaml",
            "        - name: target\n          value: $(params.target)\n",
            "        - name: target\n          value: $(params.target)\n        - name: target\n"
            "          value: $(params.target)\n",
        ),
        "param 'target' given twice",
    ),
    (
        "pipeline_params_match_task_params",
        "pipeline param named unlike the Task param",
        edit("pipelines/model-import.yaml", "value: $(params.concurrency)", "value: $(params.requests)"),
        "fed by pipeline param 'requests'",
    ),
    (
        "tasks_readme",
        "param added without docs",
        edit("tasks/upload-model.yaml", "  params:\n", UNUSED_PARAM),
        "unused-knob",
    ),
    (
        "inference_service_fits_runtime",
        "runtime renamed",
        edit("gitops/base/servingruntime.yaml", "  name: diffusers-runtime\n", "  name: diffusers\n"),
        "is not a ServingRuntime",
    ),
    (
        "inference_service_fits_runtime",
        "model format not supported",
        edit("gitops/base/servingruntime.yaml", "    - name: diffusers\n", "    - name: pytorch\n"),
        "not supported",
    ),
    (
        "monitoring_metrics",
        "dashboard queries a metric the runtime lacks",
        edit(checks.DASHBOARD, "diffusers_images_generated_total", "diffusers_images_total"),
        "diffusers_images_total",
    ),
    (
        "monitoring_metrics",
        "alert on a renamed runtime metric",
        edit(checks.METRICS_MODULE, '"diffusers_request_seconds"', '"diffusers_request_latency_seconds"'),
        "diffusers_request_seconds_bucket",
    ),
    (
        "kustomize_renders",
        "missing resource",
        edit(
            "tasks/kustomization.yaml",
            "  - upload-model.yaml\n",
            "  - upload-model.yaml\n  - missing-task.yaml\n",
        ),
        "tasks",
    ),
    (
        "crd_schemas",
        "misspelt step field",
        edit("tasks/upload-model.yaml", "      script: |", "      scirpt: |"),
        "scirpt",
    ),
    (
        "crd_schemas",
        "misspelt pipeline task field",
        edit("pipelines/model-import.yaml", "      retries: 2", "      retry: 2"),
        "retry",
    ),
    (
        "crd_schemas",
        "misspelt taskSpec field",
        edit(
            "pipelines/model-testing.yaml",
            "            computeResources:",
            "            resources:",
        ),
        "taskSpec",
    ),
    (
        "crd_schemas",
        "misspelt PipelineRun field",
        edit(
            "pipelineruns/model-testing.yaml",
            "  taskRunTemplate:",
            "  taskRunTemplates:",
        ),
        "taskRunTemplates",
    ),
    (
        "core_objects",
        "misspelt volume field",
        edit("gitops/base/minio.yaml", "claimName: minio-data", "claimname: minio-data"),
        "claimname",
    ),
    (
        "core_objects",
        "service selects no pod",
        edit(
            "gitops/base/minio.yaml",
            "  selector:\n    app.kubernetes.io/name: minio",
            "  selector:\n    app.kubernetes.io/name: minio-server",
        ),
        "matches no pod",
    ),
    (
        "core_objects",
        "secret with committed values",
        edit(
            "gitops/base/data-connection.yaml",
            "type: Opaque",
            "type: Opaque\nstringData:\n  AWS_ACCESS_KEY_ID: admin",
        ),
        "carries values",
    ),
    (
        "tekton_lint",
        "unused task param",
        edit("tasks/upload-model.yaml", "  params:\n", UNUSED_PARAM),
        "unused-knob",
    ),
    (
        "tekton_lint",
        "pipeline references a missing task",
        edit(
            "pipelines/model-import.yaml",
            "        name: benchmark-model",
            "        name: benchmark-models",
        ),
        "benchmark-models",
    ),
    (
        "shellcheck",
        "unquoted variable",
        edit("gitops/scripts/lib.sh", 'echo "$run"', "echo $run"),
        "SC2086",
    ),
    (
        "hadolint",
        "unpinned apt install",
        edit(
            "tools/Containerfile",
            "WORKDIR /home/modelpipe",
            "RUN apt-get install curl\nWORKDIR /home/modelpipe",
        ),
        "DL3008",
    ),
    (
        "pipelineruns_match_pipelines",
        "required param missing",
        edit(
            "pipelineruns/model-import.yaml",
            "    - name: version-name\n      value: v1\n",
            "",
        ),
        "version-name",
    ),
    (
        "pipelineruns_match_pipelines",
        "unknown param",
        edit(
            "pipelineruns/model-testing.yaml",
            "    - name: endpoint",
            "    - name: end-point",
        ),
        "end-point",
    ),
    (
        "pipelineruns_match_pipelines",
        "workspace not bound",
        edit(
            "pipelineruns/model-testing.yaml",
            "    - name: model\n",
            "    - name: models\n",
        ),
        "models",
    ),
    (
        "pipelines_match_tasks",
        "result the task does not declare",
        edit(
            "pipelines/model-import.yaml",
            "value: $(tasks.upload-model.results.MODEL_URI)\n        - name: runtime-image",
            "value: $(tasks.upload-model.results.MODEL_URL)\n        - name: runtime-image",
        ),
        "MODEL_URL",
    ),
    (
        "pipelines_match_tasks",
        "param the task does not declare",
        edit(
            "pipelines/model-import.yaml",
            "        - name: variant\n",
            "        - name: varient\n",
        ),
        "varient",
    ),
    (
        "pipelines_match_tasks",
        "undeclared pipeline param",
        edit(
            "pipelines/model-testing.yaml",
            "$(params.timeout)",
            "$(params.timeout-seconds)",
        ),
        "timeout-seconds",
    ),
    (
        "no_params_in_scripts",
        "param pasted into a script",
        edit(
            "tasks/download-model.yaml",
            "        set -eu\n",
            '        set -eu\n        echo "$(params.source)"\n',
        ),
        "download-model",
    ),
    (
        "no_latest_images",
        "latest tag in a task",
        edit("tasks/upload-model.yaml", "modelpipe-tools:0.1.0", "modelpipe-tools:latest"),
        "latest",
    ),
    (
        "no_latest_images",
        "untagged base image",
        edit("tools/Containerfile", "python:3.11.13-slim-bookworm", "python"),
        "no tag",
    ),
    (
        "everything_described",
        "param without description",
        edit(
            "tasks/register-model.yaml",
            "      description: Registered model name.\n",
            "",
        ),
        "model-name",
    ),
    (
        "names",
        "camelCase param",
        edit("pipelines/model-import.yaml", "- name: s3-bucket", "- name: s3Bucket"),
        "s3Bucket",
    ),
    (
        "step_convention",
        "results written elsewhere",
        edit("tasks/deploy-model.yaml", "value: /tekton/results", "value: /tmp/results"),
        "RESULTS_DIR",
    ),
    (
        "step_convention",
        "param not passed through env",
        edit(
            "tasks/benchmark-model.yaml",
            "        - name: PARAM_WARMUP\n          value: $(params.warmup)\n",
            "",
        ),
        "warmup",
    ),
    (
        "step_convention",
        "privileged step",
        edit(
            "tasks/build-runtime.yaml",
            "        runAsUser: 0\n",
            "        runAsUser: 0\n        privileged: true\n",
        ),
        "privileged",
    ),
    (
        "pipeline_policies",
        "network task without retries",
        edit(
            "pipelines/model-import.yaml",
            "          workspace: model\n      retries: 2\n      timeout: 2h0m0s\n    - name: check-model",
            "          workspace: model\n      timeout: 2h0m0s\n    - name: check-model",
        ),
        "download-model",
    ),
    (
        "pipeline_policies",
        "kubernetes overlay keeps the cluster resolver",
        edit(
            "gitops/overlays/kubernetes/kustomization.yaml",
            "    path: hub-buildah.yaml\n",
            "    path: namespace-pod-security.yaml\n",
        ),
        "openshift-pipelines",
    ),
    (
        "secrets_agree",
        "secret key the script never creates",
        edit("tasks/download-model.yaml", "key: HF_TOKEN", "key: HUGGINGFACE_TOKEN"),
        "HUGGINGFACE_TOKEN",
    ),
    (
        "secrets_agree",
        "secret name the script never creates",
        edit(
            "deploy.sh",
            "HF_TOKEN_SECRET=modelpipe-hf-token",
            "HF_TOKEN_SECRET=hf-token",
        ),
        "modelpipe-hf-token",
    ),
    (
        "secrets_agree",
        "endpoint token secret required",
        edit(
            "tasks/benchmark-model.yaml",
            "              key: token\n              optional: true\n",
            "              key: token\n",
        ),
        "map its key `token`, optional",
    ),
    (
        "secrets_agree",
        "configmap key nobody sets",
        edit(
            "tasks/register-model.yaml",
            "key: MODEL_REGISTRY_AUTHOR",
            "key: MODEL_REGISTRY_AUTHOR_NAME",
        ),
        "MODEL_REGISTRY_AUTHOR_NAME",
    ),
    (
        "secrets_agree",
        "undocumented template key",
        edit(
            ".env.template",
            "# Optional read token for gated or private models; empty downloads anonymously.\n",
            "",
        ),
        "HF_TOKEN",
    ),
    (
        "settings_offered",
        "setting config.py reads but .env.template does not offer",
        edit(".env.template", "MODEL_REGISTRY_TIMEOUT=30\n", ""),
        ".env.template does not offer MODEL_REGISTRY_TIMEOUT",
    ),
    (
        "settings_offered",
        "ConfigMap key deploy.sh never fills",
        edit("deploy.sh", '--config "MODEL_REGISTRY_TIMEOUT=$(env_value MODEL_REGISTRY_TIMEOUT 30)" ', ""),
        "key MODEL_REGISTRY_TIMEOUT is never filled by deploy.sh from .env",
    ),
    (
        "settings_offered",
        "ConfigMap default that differs from the template's",
        edit("gitops/base/config.yaml", 'MODEL_REGISTRY_TIMEOUT: "30"', 'MODEL_REGISTRY_TIMEOUT: "60"'),
        "MODEL_REGISTRY_TIMEOUT defaults to '60', .env.template to '30'",
    ),
    (
        "settings_offered",
        "registry step without the timeout",
        edit("tasks/publish-results.yaml", "key: MODEL_REGISTRY_TIMEOUT", "key: MODEL_REGISTRY_AUTHOR"),
        "Task publish-results step publish: reads the registry settings but not MODEL_REGISTRY_TIMEOUT",
    ),
    (
        "settings_offered",
        "Hub step without the mirror setting",
        edit("tasks/evaluate-model.yaml", "key: HF_ENDPOINT", "key: AWS_S3_BUCKET"),
        "Task evaluate-model step evaluate: reads HF_TOKEN but not HF_ENDPOINT",
    ),
    (
        "settings_offered",
        "Hub mirror setting deploy.sh never fills",
        edit("deploy.sh", ' \\\n    --config "HF_ENDPOINT=$(env_value HF_ENDPOINT)"', ""),
        "step download: reads modelpipe-config key HF_ENDPOINT, which deploy.sh never fills",
    ),
    (
        "task_flags_exist",
        "flag modelpipe does not have",
        edit(
            "tasks/upload-model.yaml",
            '--model-uri "$PARAM_MODEL_URI"',
            '--model-uri "$PARAM_MODEL_URI" --bogus-flag',
        ),
        "--bogus-flag",
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "expected"),
    [
        pytest.param(
            name,
            mutate,
            expected,
            id=f"{name}-{label.replace(' ', '-')}",
            marks=_marks(name),
        )
        for name, label, mutate, expected in BROKEN
    ],
)
def test_check_reports_broken_copy(
    tmp_path: Path, name: str, mutate: Callable[[Path], None], expected: str
) -> None:
    root = checks.copy_tree(REPO_ROOT, tmp_path / "repo")
    mutate(root)
    problems = CHECKS[name](root)
    assert any(expected in problem for problem in problems), problems


def test_every_check_has_a_broken_copy() -> None:
    assert set(CHECKS) == {name for name, *_ in BROKEN}


def test_the_template_offers_the_registry_timeout_config_defaults_to() -> None:
    from modelpipe.config import DEFAULT_REGISTRY_TIMEOUT, MODEL_REGISTRY_TIMEOUT

    template = (REPO_ROOT / ".env.template").read_text(encoding="utf-8").splitlines()
    assert f"{MODEL_REGISTRY_TIMEOUT}={DEFAULT_REGISTRY_TIMEOUT:g}" in template


@pytest.mark.parametrize("overlay", checks.OVERLAYS)
def test_register_reads_the_image_the_vllm_serving_runtime_runs(overlay: str) -> None:
    docs = checks.rendered(REPO_ROOT, overlay)
    (runtime,) = [
        d for d in docs if d["kind"] == "ServingRuntime" and d["metadata"]["name"] == "vllm-runtime"
    ]
    (config,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "modelpipe-serving-runtimes"
    ]
    image = runtime["spec"]["containers"][0]["image"]
    assert "@sha256:" in image
    assert config["data"]["VLLM_RUNTIME_IMAGE"] == image
