"""Offline checks of the Tekton/GitOps bundle; each takes a repository root and returns its problems.

The tests run every check on the real tree (no problems) and on a deliberately broken copy (the
problem is reported), so each check is shown to be able to fail.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from modelpipe.model_kinds import MODEL_FORMATS
from modelpipe.targets.vllm import VllmOptions

from tests.manifests.schemas import (
    CORE_MODELS,
    CRD_FILES,
    crd_schema,
    model_errors,
    schema_errors,
    task_spec_schema,
)

Problems = list[str]
Doc = dict[str, Any]
# Every vLLM option `modelpipe deploy` can append to the vLLM ServingRuntime's args.
LLM_OPTIONS = VllmOptions(
    tensor_parallel_size=2, max_model_len=4096, dtype="bfloat16", gpu_memory_utilization=0.9
)

KUSTOMIZATIONS = (
    "tasks",
    "pipelines",
    "gitops/base",
    "gitops/overlays/openshift",
    "gitops/overlays/kubernetes",
    "gitops/monitoring",
)
OVERLAYS = ("gitops/overlays/openshift", "gitops/overlays/kubernetes")
SCRIPTS = (
    "deploy.sh",
    "run-model-import.sh",
    "run-model-testing.sh",
    "gitops/scripts/lib.sh",
    ".ci/run",
    "tools/scripts/install-system-tools.sh",
    "tools/scripts/setup-vllm-venv.sh",
)
CONTAINERFILES = ("tools/Containerfile", "runtime/Containerfile")
# Tasks resolved from the cluster (OpenShift Pipelines) or Tekton Hub: their contract, for linting.
EXTERNAL_TASKS = Path(__file__).with_name("external-tasks.yaml")
TEKTON_LINT_CONFIG = Path(__file__).with_name(".tektonlintrc.yaml")
TEKTON_LINT = Path(__file__).with_name("node_modules") / ".bin" / "tekton-lint"
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
REF = re.compile(r"\$\((params|tasks|workspaces|context|results)\.([^)]*)\)")
# Network-bound pipeline tasks must retry (transient registry/S3/HF failures).
NETWORK_TASKS = {
    "fetch-source",
    "download-model",
    "upload-model",
    "register-model",
    "publish-results",
}

try:
    _LOADER: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _LOADER = yaml.SafeLoader


def load_all(text: str) -> list[Doc]:
    """Every non-empty YAML document in ``text``."""
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]


def load_file(path: Path) -> list[Doc]:
    return load_all(path.read_text(encoding="utf-8"))


@functools.cache
def kustomize(root: Path, directory: str) -> str:
    """``kubectl kustomize`` output; raises CalledProcessError with kustomize's message."""
    return subprocess.run(
        ["kubectl", "kustomize", str(root / directory)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def rendered(root: Path, directory: str) -> list[Doc]:
    return load_all(kustomize(root, directory))


def tasks_by_name(root: Path) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in rendered(root, "tasks")}


def pipelines_by_name(root: Path) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in rendered(root, "pipelines")}


@functools.cache
def pipelineruns(root: Path) -> list[tuple[str, Doc]]:
    """The example PipelineRuns plus what the run scripts print with --dry-run."""
    runs = [
        (str(path.relative_to(root)), doc)
        for path in sorted((root / "pipelineruns").glob("*.yaml"))
        for doc in load_file(path)
    ]
    for script, args in (
        ("run-model-import.sh", ["--dry-run", "--env-file", "/dev/null"]),
        (
            "run-model-testing.sh",
            [
                "--dry-run",
                "--env-file",
                "/dev/null",
                "--registered-model-id",
                "1",
                "--model-version-id",
                "2",
                "--model-uri",
                "s3://b/m",
                "--name",
                "m",
                "--endpoint",
                "http://127.0.0.1:8080",
            ],
        ),
    ):
        out = subprocess.run([str(root / script), *args], check=True, capture_output=True, text=True).stdout
        runs += [(f"{script} --dry-run", doc) for doc in load_all(out)]
    return runs


def steps_of(task_spec: Doc) -> list[Doc]:
    return list(task_spec.get("steps") or [])


def all_task_specs(root: Path) -> Iterator[tuple[str, Doc]]:
    """Every Task spec: the Tasks and the taskSpecs embedded in Pipelines."""
    for name, task in tasks_by_name(root).items():
        yield f"Task {name}", task["spec"]
    for name, pipeline in pipelines_by_name(root).items():
        for ptask in pipeline["spec"].get("tasks", []) + pipeline["spec"].get("finally", []):
            if "taskSpec" in ptask:
                yield f"Pipeline {name} task {ptask['name']}", ptask["taskSpec"]


# --- rendering and schemas ------------------------------------------------------------------------


def check_kustomize_renders(root: Path) -> Problems:
    """Every kustomization renders."""
    problems = []
    for directory in KUSTOMIZATIONS:
        try:
            kustomize(root, directory)
        except subprocess.CalledProcessError as err:
            problems.append(f"{directory}: kustomize failed: {err.stderr.strip()[-400:]}")
    return problems


def _crd_problems(specs: Path, doc: Doc, where: str) -> Problems:
    group, _, version = doc.get("apiVersion", "").rpartition("/")
    if (group, doc.get("kind")) not in CRD_FILES:
        return []
    schema = crd_schema(specs, group, doc["kind"], version)
    if schema is None:
        return [f"{where}: {doc['apiVersion']} {doc['kind']} is not served by the CRD in {specs}"]
    problems = schema_errors(schema, doc, where)
    if doc["kind"] == "Pipeline":
        for ptask in doc["spec"].get("tasks", []) + doc["spec"].get("finally", []):
            if "taskSpec" in ptask:
                problems += schema_errors(
                    task_spec_schema(specs),
                    ptask["taskSpec"],
                    f"{where} taskSpec {ptask['name']}",
                )
    return problems


def check_crd_schemas(root: Path, specs: Path) -> Problems:
    """Tekton and KServe objects (overlays, PipelineRuns) match the CRD schemas; unknown fields rejected."""
    problems: Problems = []
    seen = 0
    for overlay in OVERLAYS:
        for doc in rendered(root, overlay):
            problems += _crd_problems(specs, doc, f"{overlay} {doc['kind']}/{doc['metadata'].get('name')}")
            seen += doc["apiVersion"].startswith(("tekton.dev/", "serving.kserve.io/"))
    for where, doc in pipelineruns(root):
        problems += _crd_problems(specs, doc, where)
    if seen == 0:
        problems.append("no Tekton or KServe object rendered")
    return problems


def check_core_objects(root: Path) -> Problems:
    """Core objects: known kinds with no unknown fields, names, namespaces, selectors and references agree."""
    problems: Problems = []
    for overlay in (*OVERLAYS, "gitops/monitoring"):
        docs = rendered(root, overlay)
        roles = {d["metadata"]["name"] for d in docs if d["kind"] == "Role"}
        accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
        pod_labels = []
        for doc in docs:
            where = f"{overlay} {doc['kind']}/{doc['metadata'].get('name')}"
            model = CORE_MODELS.get((doc["apiVersion"], doc["kind"]))
            if model is None:
                if not doc["apiVersion"].startswith(
                    ("tekton.dev/", "serving.kserve.io/", "monitoring.coreos.com/")
                ):
                    problems.append(f"{where}: unexpected kind {doc['apiVersion']} {doc['kind']}")
                continue
            problems += list(model_errors(doc, model, where))
            name = doc["metadata"].get("name", "")
            if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name):
                problems.append(f"{where}: metadata.name {name!r} is not a DNS name")
            if doc["kind"] != "Namespace" and not doc["metadata"].get("namespace"):
                problems.append(f"{where}: no namespace after rendering")
            if doc["kind"] == "Secret" and (doc.get("data") or doc.get("stringData")):
                problems.append(f"{where}: committed Secret carries values (deploy.sh sets them)")
            if (
                doc["kind"] == "RoleBinding"
                and doc["roleRef"]["kind"] == "Role"
                and doc["roleRef"]["name"] not in roles
            ):
                problems.append(f"{where}: roleRef Role {doc['roleRef']['name']} is not in the bundle")
            if doc["kind"] in {"Deployment", "Job"}:
                template = doc["spec"]["template"]
                labels = template["metadata"].get("labels", {})
                pod_labels.append(labels)
                selector = doc["spec"].get("selector", {}).get("matchLabels", {})
                if any(labels.get(k) != v for k, v in selector.items()):
                    problems.append(f"{where}: selector {selector} does not match the pod labels {labels}")
                account = template["spec"].get("serviceAccountName")
                if account and account not in accounts:
                    problems.append(f"{where}: serviceAccountName {account} is not in the bundle")
                for container in template["spec"]["containers"]:
                    if not container.get("resources", {}).get("requests"):
                        problems.append(f"{where}: container {container['name']} has no resource requests")
        for doc in docs:
            if doc["kind"] == "Service":
                selector = doc["spec"].get("selector", {})
                if not any(all(labels.get(k) == v for k, v in selector.items()) for labels in pod_labels):
                    problems.append(
                        f"{overlay} Service/{doc['metadata']['name']}: selector {selector} matches no pod"
                    )
    return problems


# --- linters -------------------------------------------------------------------------------------


def _lint_copy(root: Path, workdir: Path) -> list[Path]:
    """Tasks and Pipelines with resolver taskRefs turned into name refs to the external-task stubs.

    tekton-lint crashes on resolver taskRefs; naming the stub instead keeps no-missing-resource and the
    param/workspace checks on for the calls to git-clone and buildah.
    """
    files = []
    for source in [
        *sorted((root / "tasks").glob("*.yaml")),
        *sorted((root / "pipelines").glob("*.yaml")),
        EXTERNAL_TASKS,
    ]:
        if source.name == "kustomization.yaml":
            continue
        docs = load_file(source)
        for doc in docs:
            for ptask in doc.get("spec", {}).get("tasks", []) + doc.get("spec", {}).get("finally", []):
                ref = ptask.get("taskRef") or {}
                if ref.get("resolver"):
                    name = {p["name"]: p["value"] for p in ref.get("params", [])}["name"]
                    ptask["taskRef"] = {"name": name}
        target = workdir / f"{source.parent.name}-{source.name}"
        target.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        files.append(target)
    return files


def check_tekton_lint(root: Path) -> Problems:
    """@ibm/tekton-lint with the checked-in config reports zero errors and zero warnings."""
    with tempfile.TemporaryDirectory() as tmp:
        files = _lint_copy(root, Path(tmp))
        proc = subprocess.run(
            [
                str(TEKTON_LINT),
                "--config",
                str(TEKTON_LINT_CONFIG),
                "--max-warnings",
                "0",
                "--color",
                "false",
                *map(str, files),
            ],
            check=False,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or re.search(r"\b(warning|error)\b", proc.stdout):
        return [f"tekton-lint (exit {proc.returncode}): {output[-2000:]}"]
    return []


def check_shellcheck(root: Path, shellcheck: str) -> Problems:
    """shellcheck (following sourced files) is clean on every script."""
    proc = subprocess.run(
        [shellcheck, "-x", *SCRIPTS],
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
    )
    return [f"shellcheck: {proc.stdout.strip()[-2000:]}"] if proc.returncode != 0 else []


def check_hadolint(root: Path, hadolint: str) -> Problems:
    """hadolint is clean on both Containerfiles (and they exist)."""
    problems = []
    for name in CONTAINERFILES:
        if not (root / name).is_file():
            problems.append(f"{name}: missing")
            continue
        proc = subprocess.run([hadolint, name], check=False, capture_output=True, text=True, cwd=root)
        if proc.returncode != 0:
            problems.append(f"hadolint {name}: {proc.stdout.strip()[-1500:]}")
    return problems


# --- cross-checks --------------------------------------------------------------------------------


def check_pipelineruns_match_pipelines(root: Path) -> Problems:
    """PipelineRuns name a Pipeline, pass only its params, every required one, and bind its workspaces."""
    pipelines = pipelines_by_name(root)
    problems = []
    for where, run in pipelineruns(root):
        if run.get("kind") != "PipelineRun":
            continue
        ref = run["spec"].get("pipelineRef", {}).get("name")
        pipeline = pipelines.get(ref)
        if pipeline is None:
            problems.append(f"{where}: pipelineRef {ref!r} is not a Pipeline in pipelines/")
            continue
        declared = {p["name"]: p for p in pipeline["spec"].get("params", [])}
        given = [p["name"] for p in run["spec"].get("params", [])]
        problems += [f"{where}: param {n!r} is not a param of {ref}" for n in given if n not in declared]
        problems += [f"{where}: param {n!r} given twice" for n in set(given) if given.count(n) > 1]
        problems += [
            f"{where}: required param {n!r} of {ref} not provided"
            for n, p in declared.items()
            if "default" not in p and n not in given
        ]
        ws_declared = {w["name"]: w for w in pipeline["spec"].get("workspaces", [])}
        ws_given = [w["name"] for w in run["spec"].get("workspaces", [])]
        problems += [
            f"{where}: workspace {n!r} is not a workspace of {ref}" for n in ws_given if n not in ws_declared
        ]
        problems += [
            f"{where}: workspace {n!r} of {ref} not bound"
            for n, w in ws_declared.items()
            if not w.get("optional") and n not in ws_given
        ]
        if not run["metadata"].get("generateName") or run["metadata"].get("name"):
            problems.append(f"{where}: use metadata.generateName (runs are created, not applied)")
        if not run["spec"].get("taskRunTemplate", {}).get("serviceAccountName"):
            problems.append(f"{where}: no taskRunTemplate.serviceAccountName")
    return problems


def check_pipelines_match_tasks(root: Path) -> Problems:
    """Pipeline tasks pass only declared params (every required one), bind declared workspaces, and
    reference only declared params, results and tasks."""
    tasks = tasks_by_name(root)
    external = {doc["metadata"]["name"]: doc for doc in load_file(EXTERNAL_TASKS)}
    problems = []
    for pname, pipeline in pipelines_by_name(root).items():
        spec = pipeline["spec"]
        params = {p["name"] for p in spec.get("params", [])}
        workspaces = {w["name"] for w in spec.get("workspaces", [])}
        ptasks = {t["name"]: t for t in spec.get("tasks", []) + spec.get("finally", [])}
        for tname, ptask in ptasks.items():
            where = f"Pipeline {pname} task {tname}"
            ref = ptask.get("taskRef") or {}
            if "taskSpec" in ptask:
                task_spec = ptask["taskSpec"]
            elif ref.get("resolver"):
                task_spec = external[{p["name"]: p["value"] for p in ref["params"]}["name"]]["spec"]
            elif ref.get("name") in tasks:
                task_spec = tasks[ref["name"]]["spec"]
            else:
                problems.append(f"{where}: taskRef {ref.get('name')!r} is not a Task in tasks/")
                continue
            declared = {p["name"]: p for p in task_spec.get("params", [])}
            given = {p["name"] for p in ptask.get("params", [])}
            problems += [f"{where}: param {n!r} is not a param of the Task" for n in given - declared.keys()]
            problems += [
                f"{where}: required Task param {n!r} not provided"
                for n, p in declared.items()
                if "default" not in p and n not in given
            ]
            task_ws = {w["name"]: w for w in task_spec.get("workspaces", [])}
            bound = {w["name"]: w.get("workspace") for w in ptask.get("workspaces", [])}
            problems += [
                f"{where}: workspace {n!r} is not a workspace of the Task"
                for n in bound.keys() - task_ws.keys()
            ]
            problems += [
                f"{where}: workspace {w!r} is not a Pipeline workspace"
                for w in bound.values()
                if w not in workspaces
            ]
            problems += [
                f"{where}: required Task workspace {n!r} not bound"
                for n, w in task_ws.items()
                if not w.get("optional") and n not in bound
            ]
            problems += [
                f"{where}: runAfter {n!r} is not a task" for n in ptask.get("runAfter", []) if n not in ptasks
            ]
        problems += _reference_problems(f"Pipeline {pname}", spec, params, ptasks, tasks, external)
    return problems


def _reference_problems(
    where: str,
    spec: Doc,
    params: set[str],
    ptasks: dict[str, Doc],
    tasks: dict[str, Doc],
    external: dict[str, Doc],
) -> Problems:
    problems = []
    outer = {k: v for k, v in spec.items() if k not in {"tasks", "finally"}}
    texts = [json.dumps(outer)] + [
        json.dumps({k: v for k, v in t.items() if k != "taskSpec"}) for t in ptasks.values()
    ]
    for text in texts:
        for kind, rest in REF.findall(text):
            if kind == "params" and rest not in params:
                problems.append(f"{where}: $(params.{rest}) is not a Pipeline param")
            if kind == "tasks" and rest != "status":
                task_name, _, tail = rest.partition(".")
                if task_name not in ptasks:
                    problems.append(f"{where}: $(tasks.{rest}) names no pipeline task")
                elif tail.startswith("results."):
                    ref = ptasks[task_name].get("taskRef") or {}
                    task = tasks.get(ref.get("name", "")) or external.get(
                        {p["name"]: p["value"] for p in ref.get("params", [])}.get("name", ""),
                        {},
                    )
                    results = {r["name"] for r in task.get("spec", {}).get("results", [])}
                    if tail.removeprefix("results.") not in results:
                        problems.append(f"{where}: $(tasks.{rest}) is not a result of that Task")
    return problems


def check_no_params_in_scripts(root: Path) -> Problems:
    """No ``$(params.`` inside any ``script:`` (params reach scripts through env)."""
    return [
        f"{where} step {step['name']}: $(params.…) inside script (pass it through env)"
        for where, spec in all_task_specs(root)
        for step in steps_of(spec)
        if "$(params." in (step.get("script") or "")
    ]


def _image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    tail = image.rsplit("/", 1)[-1]
    if ":" not in tail:
        return f"image {image!r} has no tag or digest"
    if tail.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the latest tag"
    return None


def check_no_latest_images(root: Path) -> Problems:
    """Every image (overlays, raw Tasks, Containerfile base ARGs) is pinned by tag or digest, never latest."""
    problems = []
    texts = {overlay: kustomize(root, overlay) for overlay in OVERLAYS}
    texts["tasks"] = kustomize(root, "tasks")
    texts["pipelines"] = kustomize(root, "pipelines")
    for where, text in texts.items():
        for image in re.findall(r"^\s*(?:-\s+)?image:\s*[\"']?([^\s\"']+)", text, flags=re.MULTILINE):
            if (problem := _image_problem(image)) is not None:
                problems.append(f"{where}: {problem}")
    for name in CONTAINERFILES:
        path = root / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            arg = re.match(r"^\s*ARG\s+\w*IMAGE\w*=(\S+)", line)
            if arg and (problem := _image_problem(arg.group(1))) is not None:
                problems.append(f"{name}: {problem}")
            if match := re.match(r"^\s*FROM\s+(\S+)", line, flags=re.IGNORECASE):
                image = match.group(1)
                if "$" not in image and image != "scratch" and (problem := _image_problem(image)) is not None:
                    problems.append(f"{name}: {problem}")
    return problems


def check_everything_described(root: Path) -> Problems:
    """Every Task/Pipeline param, result and workspace has a description; the Tasks and Pipelines too."""
    problems = []
    specs = [*all_task_specs(root)] + [
        (f"Pipeline {n}", p["spec"]) for n, p in pipelines_by_name(root).items()
    ]
    for where, spec in specs:
        if not str(spec.get("description", "")).strip():
            problems.append(f"{where}: no description")
        for field in ("params", "results", "workspaces"):
            for item in spec.get(field, []):
                if not str(item.get("description", "")).strip():
                    problems.append(f"{where}: {field[:-1]} {item['name']!r} has no description")
    return problems


def check_names(root: Path) -> Problems:
    """Our Tasks, Pipelines, params, workspaces and steps are kebab-case; results UPPER_SNAKE; a Task's
    file is named after it."""
    problems = []
    for path in sorted((root / "tasks").glob("*.yaml")) + sorted((root / "pipelines").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_file(path):
            name = doc["metadata"]["name"]
            if path.stem != name:
                problems.append(
                    f"{path.name}: holds {doc['kind']} {name!r} (one object per file, named after it)"
                )
    for where, spec in [*all_task_specs(root)] + [
        (f"Pipeline {n}", p["spec"]) for n, p in pipelines_by_name(root).items()
    ]:
        for field in ("params", "workspaces"):
            problems += [
                f"{where}: {field[:-1]} {i['name']!r} is not kebab-case"
                for i in spec.get(field, [])
                if not KEBAB.match(i["name"])
            ]
        problems += [
            f"{where}: result {r['name']!r} is not UPPER_SNAKE"
            for r in spec.get("results", [])
            if not UPPER_SNAKE.match(r["name"])
        ]
        problems += [
            f"{where}: step {s['name']!r} is not kebab-case"
            for s in steps_of(spec)
            if not KEBAB.match(s["name"])
        ]
    return problems


def check_step_convention(root: Path) -> Problems:
    """Task steps follow the wrapper convention: env PARAM_X per param x and nothing else named PARAM_,
    `set -eu`, one `exec modelpipe VERB` (VERB = the Task name's first word), results to
    RESULTS_DIR=/tekton/results,
    computeResources set, nothing privileged."""
    problems = []
    for name, task in tasks_by_name(root).items():
        spec = task["spec"]
        steps = steps_of(spec)
        if len(steps) != 1:
            problems.append(f"Task {name}: {len(steps)} steps (one modelpipe call per Task)")
            continue
        step = steps[0]
        env = {e["name"]: e for e in step.get("env", [])}
        arrays = {p["name"] for p in spec.get("params", []) if p.get("type") == "array"}
        params = {p["name"] for p in spec.get("params", [])} - arrays
        expected = {"PARAM_" + p.upper().replace("-", "_") for p in params}
        in_refs = json.dumps([e.get("valueFrom", {}) for e in env.values()])
        problems += [
            f"Task {name}: param {p!r} does not reach the step as env PARAM_{p.upper().replace('-', '_')}"
            for p in params
            if "PARAM_" + p.upper().replace("-", "_") not in env and f"$(params.{p})" not in in_refs
        ]
        # Arrays cannot be env values: they reach the script as its arguments ("$@").
        problems += [
            f"Task {name}: array param {p!r} does not reach the step as args $(params.{p}[*])"
            for p in arrays
            if f"$(params.{p}[*])" not in step.get("args", [])
        ]
        problems += [
            f"Task {name}: env {e} matches no param"
            for e in env
            if e.startswith("PARAM_") and e not in expected
        ]
        if env.get("RESULTS_DIR", {}).get("value") != "/tekton/results":
            problems.append(f"Task {name}: env RESULTS_DIR must be /tekton/results")
        script = step.get("script") or ""
        verb = name.split("-")[0]
        if not re.search(r"^set -eu", script, flags=re.MULTILINE):
            problems.append(f"Task {name}: script does not start with set -eu")
        execs = re.findall(r"^\s*exec modelpipe (\S+)", script, flags=re.MULTILINE)
        if execs != [verb]:
            problems.append(f"Task {name}: script must exec `modelpipe {verb}` exactly once, found {execs}")
        if '--results-dir "$RESULTS_DIR"' not in script:
            problems.append(f'Task {name}: script does not pass --results-dir "$RESULTS_DIR"')
        resources = step.get("computeResources", {})
        if not resources.get("requests") or not resources.get("limits", {}).get("memory"):
            problems.append(f"Task {name}: computeResources needs requests and a memory limit")
        security = step.get("securityContext", {})
        if security.get("privileged") or security.get("allowPrivilegeEscalation"):
            problems.append(f"Task {name}: privileged step")
    return problems


def check_pipeline_policies(root: Path) -> Problems:
    """Network-bound pipeline tasks retry; the kubernetes overlay resolves nothing from openshift-pipelines;
    nothing rendered is privileged."""
    problems = []
    for pname, pipeline in pipelines_by_name(root).items():
        for ptask in pipeline["spec"].get("tasks", []):
            if ptask["name"] in NETWORK_TASKS and not ptask.get("retries"):
                problems.append(f"Pipeline {pname} task {ptask['name']}: network-bound, needs retries")
    k8s = kustomize(root, "gitops/overlays/kubernetes")
    if "openshift-pipelines" in k8s:
        problems.append(
            "gitops/overlays/kubernetes: still resolves tasks from the openshift-pipelines namespace"
        )
    for overlay in OVERLAYS:
        if re.search(
            r"privileged:\s*true|allowPrivilegeEscalation:\s*true",
            kustomize(root, overlay),
        ):
            problems.append(f"{overlay}: privileged container")
    return problems


def _env_template_keys(root: Path) -> dict[str, str]:
    keys = {}
    comment: list[str] = []
    for line in (root / ".env.template").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            comment.append(line)
        elif match := re.match(r"^([A-Z][A-Z0-9_]*)=", line):
            keys[match.group(1)] = " ".join(c for c in comment if not c.startswith("# ---"))
            comment = []
        else:
            comment = []
    return keys


def _dry_run_values(root: Path, auth: Path) -> dict[str, str]:
    """Every .env.template key with a placeholder value (the images and namespace valid ones)."""
    values = {k: f"placeholder-{k.lower().replace('_', '-')}" for k in _env_template_keys(root)}
    values.update(
        NAMESPACE="modelpipe",
        TOOLS_IMAGE="quay.io/x/tools:1.0",
        RUNTIME_IMAGE_REPO="quay.io/x/runtime",
        REGISTRY_AUTH_FILE=str(auth),
        AWS_S3_ENDPOINT="http://minio:9000",
    )
    return values


@functools.cache
def _deploy_dry_run(root: Path) -> str:
    """deploy.sh --dry-run with every .env.template key filled (``_dry_run_values``)."""
    with tempfile.TemporaryDirectory() as tmp:
        auth = Path(tmp) / "auth.json"
        auth.write_text('{"auths": {}}', encoding="utf-8")
        env_file = Path(tmp) / "env"
        values = _dry_run_values(root, auth)
        env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
        return subprocess.run(
            [
                str(root / "deploy.sh"),
                "--dry-run",
                "--overlay",
                "kubernetes",
                "--env-file",
                str(env_file),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout


def _key_refs(node: Any, defaults: dict[str, str]) -> Iterator[tuple[str, str, str, bool]]:
    """(kind, name, key, optional) of every secretKeyRef/configMapKeyRef, $(params.x) replaced by defaults."""
    if isinstance(node, dict):
        for kind in ("secretKeyRef", "configMapKeyRef"):
            if kind in node:
                ref = node[kind]
                name = REF.sub(lambda m: defaults.get(m.group(2), m.group(0)), ref["name"])
                yield kind, name, ref["key"], bool(ref.get("optional"))
        for value in node.values():
            yield from _key_refs(value, defaults)
    elif isinstance(node, list):
        for item in node:
            yield from _key_refs(item, defaults)


# deploy-model creates Secret NAME-sa-token (kserve_access.token_secret_name) for an auth=true endpoint;
# Tasks that call the endpoint map its `token` key, optional, since it exists only after such a deploy.
RUN_TIME_SECRET_SUFFIX = "-sa-token"


def check_secrets_agree(root: Path) -> Problems:
    """Secret and ConfigMap names and keys agree across .env.template, deploy.sh and the manifests."""
    problems = []
    out = _deploy_dry_run(root)
    created: dict[str, set[str]] = {}
    configmaps: dict[str, set[str]] = {}
    for doc in load_all(out.replace("<redacted>", "x")):
        if doc.get("kind") == "Secret" and doc.get("data"):
            created[doc["metadata"]["name"]] = set(doc["data"])
        if doc.get("kind") == "ConfigMap":
            configmaps[doc["metadata"]["name"]] = set(doc.get("data", {}))
    template = _env_template_keys(root)
    problems += [
        f".env.template: key {k} has no comment documenting it" for k, c in template.items() if not c.strip()
    ]
    # storage-config entries are named after data connections, not .env keys (tests/manifests/
    # storage_credentials.py checks them).
    secret_keys = {
        k for name, keys in created.items() if name != "storage-config" for k in keys if not k.startswith(".")
    }
    problems += [
        f"deploy.sh creates Secret key {k} that .env.template does not document"
        for k in secret_keys - template.keys()
    ]
    deploy_text = (
        (root / "deploy.sh").read_text(encoding="utf-8")
        + (root / "run-model-import.sh").read_text(encoding="utf-8")
        + (root / "run-model-testing.sh").read_text(encoding="utf-8")
    )
    problems += [f".env.template key {k} is read by no script" for k in template if k not in deploy_text]
    for overlay in OVERLAYS:
        for doc in rendered(root, overlay):
            for spec in _task_like_specs(doc):
                defaults = {
                    p["name"]: p.get("default", "")
                    for p in spec.get("params", [])
                    if isinstance(p.get("default", ""), str)
                }
                for kind, name, key, optional in _key_refs(spec, defaults):
                    store = created if kind == "secretKeyRef" else configmaps
                    where = f"{overlay} {doc['kind']}/{doc['metadata']['name']}"
                    if kind == "secretKeyRef" and name.endswith(RUN_TIME_SECRET_SUFFIX):
                        if not optional or key != "token":
                            problems.append(
                                f"{where}: {name} exists only once deploy-model ran with auth=true: "
                                "map its key `token`, optional"
                            )
                        continue
                    if name not in store:
                        problems.append(
                            f"{where}: {kind} {name} is neither created by deploy.sh nor in the bundle"
                        )
                    elif key not in store[name]:
                        problems.append(f"{where}: {kind} {name} has no key {key}")
    base_secrets = {d["metadata"]["name"] for d in rendered(root, "gitops/base") if d["kind"] == "Secret"}
    problems += [
        f"gitops/base: Secret layout {n} is not filled by deploy.sh" for n in base_secrets - created.keys()
    ]
    return problems


CONFIG_MODULE = "tools/modelpipe/config.py"
CONFIG_MAP = "modelpipe-config"
CONFIG_MAP_FILE = "gitops/base/config.yaml"


def config_env_vars(root: Path) -> tuple[set[str], set[str]]:
    """(every env var config.py reads, those it declares NOT_CLUSTER_SETTINGS), parsed from its source.

    config.py names each variable once as ``NAME = "NAME"``; parsing (not importing) keeps the check
    usable on a broken copy.
    """
    tree = ast.parse((root / CONFIG_MODULE).read_text(encoding="utf-8"))
    names: set[str] = set()
    excluded: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            continue
        value = node.value
        if isinstance(value, ast.Constant) and value.value == target.id and target.id.isupper():
            names.add(target.id)
        elif target.id == "NOT_CLUSTER_SETTINGS":
            excluded = {n.id for n in ast.walk(value) if isinstance(n, ast.Name) and n.id.isupper()}
    return names, excluded


def _step_env_refs(step: Doc) -> set[str]:
    return {
        item["valueFrom"]["configMapKeyRef"]["key"]
        for item in step.get("env", [])
        if item.get("valueFrom", {}).get("configMapKeyRef", {}).get("name") == CONFIG_MAP
    }


def check_settings_offered(root: Path) -> Problems:
    """Every setting config.py reads is offered in .env.template; the ConfigMap carries them to the steps.

    The base ConfigMap's keys are exactly those deploy.sh fills, its defaults are the template's, a
    step that reads one Model Registry setting from it reads all of them, and one that takes HF_TOKEN
    takes HF_ENDPOINT.
    """
    template = _env_template_keys(root)
    template_values = {
        match.group(1): match.group(2).strip().strip("\"'")
        for line in (root / ".env.template").read_text(encoding="utf-8").splitlines()
        if (match := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line))
    }
    read, excluded = config_env_vars(root)
    problems = [
        f".env.template does not offer {name}, which {CONFIG_MODULE} reads "
        "(offer it, or list it in NOT_CLUSTER_SETTINGS)"
        for name in sorted(read - excluded - template.keys())
    ]
    (base,) = [
        doc
        for doc in load_all((root / CONFIG_MAP_FILE).read_text(encoding="utf-8"))
        if doc["kind"] == "ConfigMap"
    ]
    offered = {key: str(value) for key, value in base.get("data", {}).items()}
    env = _dry_run_values(root, Path("unused"))
    rendered: set[str] = set()
    for doc in load_all(_deploy_dry_run(root).replace("<redacted>", "x")):
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == CONFIG_MAP:
            # The rendered map merges the base in, so a key deploy.sh fills holds the .env value.
            data = {key: str(value) for key, value in doc.get("data", {}).items()}
            rendered |= data.keys()
            problems += [
                f"{CONFIG_MAP_FILE}: key {k} is never filled by deploy.sh from .env"
                for k in sorted(offered)
                if k not in env or data.get(k) != env[k]
            ]
            # An optional setting (empty in the template) is added only when set, so the base lacks it.
            problems += [
                f"deploy.sh fills {CONFIG_MAP} key {k} that {CONFIG_MAP_FILE} lacks"
                for k in sorted(data.keys() - offered.keys())
                if template_values.get(k) != ""
            ]
    for key, value in sorted(offered.items()):
        if key not in template:
            problems.append(f"{CONFIG_MAP_FILE}: key {key} is not offered in .env.template")
        elif template_values.get(key) and template_values[key] != value:
            problems.append(
                f"{CONFIG_MAP_FILE}: {key} defaults to {value!r}, .env.template to {template_values[key]!r}"
            )
    registry_keys = {key for key in offered if key.startswith("MODEL_REGISTRY_")}
    for name, task in sorted(tasks_by_name(root).items()):
        for step in task["spec"].get("steps", []):
            mapped = _step_env_refs(step)
            # With every .env key set (the dry run's values), every key a step reads is in the map.
            problems += [
                f"Task {name} step {step['name']}: reads {CONFIG_MAP} key {k}, which deploy.sh never fills"
                for k in sorted(mapped - rendered)
            ]
            if mapped & registry_keys and registry_keys - mapped:
                missing = ", ".join(sorted(registry_keys - mapped))
                problems.append(
                    f"Task {name} step {step['name']}: reads the registry settings but not {missing}"
                )
            # A step that may reach the Hub (it takes the token) must also reach a configured mirror.
            takes_token = any(item["name"] == "HF_TOKEN" for item in step.get("env", []))
            if takes_token and "HF_ENDPOINT" not in mapped:
                problems.append(f"Task {name} step {step['name']}: reads HF_TOKEN but not HF_ENDPOINT")
    return problems


def _task_like_specs(doc: Doc) -> Iterator[Doc]:
    if doc["kind"] == "Task":
        yield doc["spec"]
    elif doc["kind"] == "Pipeline":
        for ptask in doc["spec"].get("tasks", []) + doc["spec"].get("finally", []):
            if "taskSpec" in ptask:
                yield ptask["taskSpec"]
    elif doc["kind"] in {"Deployment", "Job"}:
        yield doc["spec"]["template"]["spec"]


@functools.cache
def modelpipe_options(python: str) -> dict[str, list[str]]:
    """Option strings of every modelpipe subcommand, from the real parser (one subprocess)."""
    code = (
        "import argparse, json\n"
        "from modelpipe.cli import build_parser\n"
        "parser = build_parser()\n"
        "sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))\n"
        "print(json.dumps({name: [o for a in p._actions for o in a.option_strings]"
        " for name, p in sub.choices.items()}))\n"
    )
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def check_task_flags_exist(root: Path, python: str = sys.executable) -> Problems:
    """Every flag a Task script passes exists in `modelpipe VERB --help` (the real parser)."""
    options = modelpipe_options(python)
    problems = []
    for name, task in tasks_by_name(root).items():
        for step in steps_of(task["spec"]):
            script = step.get("script") or ""
            match = re.search(r"exec modelpipe (\S+)", script)
            if not match:
                continue
            verb = match.group(1)
            if verb not in options:
                problems.append(f"Task {name}: modelpipe has no subcommand {verb!r}")
                continue
            for flag in sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", script))):
                if flag not in options[verb]:
                    problems.append(f"Task {name}: `modelpipe {verb}` has no flag {flag}")
    return problems


def check_task_params_are_flags(root: Path, python: str = sys.executable) -> Problems:
    """Every Task param is a `modelpipe VERB` flag of the same name (the real parser), passed by the script
    unconditionally: ``--x "$PARAM_X"`` for strings, ``--x "$@"`` for arrays (the step's args)."""
    options = modelpipe_options(python)
    problems = []
    for name, task in tasks_by_name(root).items():
        verb = name.split("-")[0]
        for step in steps_of(task["spec"]):
            script = step.get("script") or ""
            for param in task["spec"].get("params", []):
                flag = f"--{param['name']}"
                if flag not in options.get(verb, []):
                    problems.append(
                        f"Task {name}: param {param['name']!r} is no `modelpipe {verb}` flag {flag}"
                    )
                env = "PARAM_" + param["name"].upper().replace("-", "_")
                passed = f'{flag} "$@"' if param.get("type") == "array" else f'{flag} "${env}"'
                if passed not in script:
                    problems.append(f"Task {name}: script does not pass {passed}")
    return problems


# Task defaults that differ from the flag's own default on purpose: (Task, param) -> why.
TASK_DEFAULT_OVERRIDES = {
    ("deploy-model", "cluster-local-url"): "benchmark-model runs in a pod and reaches the in-cluster URL",
}


def modelpipe_default_mismatches(
    python: str, defaults: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """For ``{verb: {flag: text}}``: the flags whose text, parsed by the flag's own type, differs from the
    flag's default (only flags with a concrete default), as ``{verb: {flag: repr(default)}}``."""
    code = (
        "import argparse, json, sys\n"
        "from modelpipe.cli import build_parser\n"
        "wanted = json.loads(sys.argv[1])\n"
        "parser = build_parser()\n"
        "sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))\n"
        "out = {}\n"
        "for verb, flags in wanted.items():\n"
        "    actions = {o: a for a in sub.choices[verb]._actions for o in a.option_strings}\n"
        "    for flag, text in flags.items():\n"
        "        action = actions[flag]\n"
        "        if action.default in (None, '') or action.required:\n"
        "            continue\n"
        "        value = action.type(text) if action.type else text\n"
        "        if isinstance(action.default, tuple) and isinstance(value, list):\n"
        "            value = tuple(value)\n"
        "        if value != action.default:\n"
        "            out.setdefault(verb, {})[flag] = repr(action.default)\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [python, "-c", code, json.dumps(defaults)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout)


def check_task_defaults_match_flags(root: Path, python: str = sys.executable) -> Problems:
    """A Task param's non-empty default is what its modelpipe flag defaults to (so the Task README, the
    pipelines and `modelpipe VERB --help` state one default), unless TASK_DEFAULT_OVERRIDES says why not."""
    tasks = tasks_by_name(root)
    wanted: dict[str, dict[str, str]] = {}
    owner: dict[tuple[str, str], str] = {}
    for name, task in tasks.items():
        verb = name.split("-")[0]
        for param in task["spec"].get("params", []):
            default = param.get("default")
            if isinstance(default, str) and default and (name, param["name"]) not in TASK_DEFAULT_OVERRIDES:
                wanted.setdefault(verb, {})[f"--{param['name']}"] = default
                owner[(verb, f"--{param['name']}")] = name
    mismatches = modelpipe_default_mismatches(python, wanted)
    return [
        f"Task {owner[(verb, flag)]}: param {flag[2:]!r} defaults to {wanted[verb][flag]!r}, "
        f"`modelpipe {verb} {flag}` to {default}"
        for verb, flags in mismatches.items()
        for flag, default in flags.items()
    ]


# Pipeline defaults that differ from the Task's on purpose: (Pipeline, param) -> why.
PIPELINE_DEFAULT_OVERRIDES = {
    ("model-import", "build"): "an import uses the ServingRuntime's image unless asked to build one",
    ("model-import", "model-kind"): "the pipeline states the kind; register-model alone takes the manifest's",
}
# Task params fed by a pipeline param of another name on purpose: (Task param, pipeline param) -> why.
PIPELINE_PARAM_RENAMES = {
    ("model-name", "name"): "an endpoint given by name serves the model under its InferenceService name",
    ("tokenizer", "model-uri"): "the uploaded model's folder holds the tokenizer files",
}


def check_pipeline_defaults_match_tasks(root: Path) -> Problems:
    """A pipeline param that feeds a Task param of the same name has the same default (unless
    PIPELINE_DEFAULT_OVERRIDES says why not)."""
    tasks = tasks_by_name(root)
    problems = []
    for pname, pipeline in pipelines_by_name(root).items():
        declared = {p["name"]: p for p in pipeline["spec"].get("params", [])}
        for ptask in pipeline["spec"].get("tasks", []):
            task = tasks.get(ptask.get("taskRef", {}).get("name", ""))
            if task is None:
                continue
            task_params = {p["name"]: p for p in task["spec"].get("params", [])}
            for param in ptask.get("params", []):
                if param.get("value") != f"$(params.{param['name']})" or param["name"] not in task_params:
                    continue
                if (pname, param["name"]) in PIPELINE_DEFAULT_OVERRIDES:
                    continue
                mine, theirs = (
                    declared[param["name"]].get("default"),
                    task_params[param["name"]].get("default"),
                )
                if mine is not None and theirs is not None and mine != theirs:
                    problems.append(
                        f"Pipeline {pname}: param {param['name']!r} defaults to {mine!r}, "
                        f"Task {task['metadata']['name']} to {theirs!r}"
                    )
    return problems


DOCS = ("README.md", "tasks/README.md", "pipelines/README.md", "run-model-import.sh", "run-model-testing.sh")
_CLIP_GATE = re.compile(r"min-clip-score[= ]([0-9.]+)")


def check_docs_agree_with_code(root: Path) -> Problems:
    """Documented gate examples can fail (the CLIP score is 100 x cosine, so a gate below 1 never does),
    and no document says VALIDATED is true when no gate was set (publish makes it false then)."""
    problems = []
    for name in DOCS:
        text = (root / name).read_text(encoding="utf-8")
        for value in _CLIP_GATE.findall(text):
            if float(value) < 1:
                problems.append(f"{name}: min-clip-score={value} can never fail (the score is 100 x cosine)")
        if re.search(r"VALIDATED[^\n]*\(or none was set\)", text):
            problems.append(f"{name}: says VALIDATED is true with no gate; publish makes it false")
    for where, spec in all_task_specs(root):
        for result in spec.get("results", []):
            if result["name"] == "VALIDATED" and "none was set" not in " ".join(
                result["description"].split()
            ):
                problems.append(f"{where}: VALIDATED's description does not say what happens with no gate")
    return problems


# Shell that makes a decision: a Task script only feeds params to modelpipe, so none of it belongs there.
_SCRIPT_LOGIC = re.compile(
    r"\b(if|then|else|elif|fi|for|while|until|case|esac)\b|&&|\|\||\$\{\w+:?[-=+?]|\$\("
)
_SCRIPT_MAX_LINES = 3  # shebang, set -eu, exec modelpipe ... (continuation lines join the exec)


def check_thin_scripts(root: Path) -> Problems:
    """Each Task script is a shebang, `set -eu` and one `exec modelpipe` command: no conditionals, no
    loops, no defaults or command substitution in shell."""
    problems = []
    for where, spec in all_task_specs(root):
        if not where.startswith("Task "):
            continue
        for step in steps_of(spec):
            script = step.get("script") or ""
            lines = [line for line in script.replace("\\\n", " ").splitlines() if line.strip()]
            if len(lines) > _SCRIPT_MAX_LINES:
                problems.append(
                    f"{where} step {step['name']}: {len(lines)} lines, at most {_SCRIPT_MAX_LINES}"
                )
            for line in lines[1:]:
                if match := _SCRIPT_LOGIC.search(line):
                    problems.append(f"{where} step {step['name']}: shell logic {match[0]!r} in the script")
    return problems


def check_pipeline_params_match_task_params(root: Path) -> Problems:
    """A pipeline param handed straight to one of our Tasks has the Task param's name (one name
    everywhere)."""
    tasks = tasks_by_name(root)
    problems = []
    for pname, pipeline in pipelines_by_name(root).items():
        for ptask in pipeline["spec"].get("tasks", []):
            names = [param["name"] for param in ptask.get("params", [])]
            problems += [
                f"Pipeline {pname} task {ptask['name']}: param {name!r} given twice"
                for name in sorted({n for n in names if names.count(n) > 1})
            ]
            if ptask.get("taskRef", {}).get("name") not in tasks:
                continue  # cluster/hub Tasks keep their catalog names (URL, IMAGE, ...)
            for param in ptask.get("params", []):
                value = param.get("value")
                ref = (
                    re.fullmatch(r"\$\(params\.([a-z0-9-]+)(\[\*\])?\)", value)
                    if isinstance(value, str)
                    else None
                )
                if ref and ref[1] != param["name"] and (param["name"], ref[1]) not in PIPELINE_PARAM_RENAMES:
                    problems.append(
                        f"Pipeline {pname} task {ptask['name']}: param {param['name']!r} fed by "
                        f"pipeline param {ref[1]!r} (use one name)"
                    )
    return problems


def check_inference_service_fits_runtime(root: Path, specs: Path) -> Problems:
    """The InferenceService `modelpipe deploy` builds (kserve.build_inference_service, with the
    deploy-model Task's defaults) matches the KServe CRD and the bundle's ServingRuntime: runtime name,
    model format, the V1 protocol benchmark-model speaks. Likewise a text-generation InferenceService with
    every vLLM option set against the vLLM ServingRuntime."""
    from modelpipe.steps.deploy import SERVING_RUNTIMES
    from modelpipe.targets.kserve import IsvcSpec, Resources, build_inference_service

    task = tasks_by_name(root)["deploy-model"]["spec"]
    defaults = {p["name"]: p.get("default") for p in task["params"]}
    runtimes = {
        d["metadata"]["name"]: d for d in rendered(root, "gitops/base") if d["kind"] == "ServingRuntime"
    }
    problems = []
    for mode in ("RawDeployment", "Serverless"):
        isvc = build_inference_service(
            IsvcSpec(
                name="sd-turbo",
                namespace="modelpipe",
                model_uri="s3://modelpipe/models/sd-turbo/v1",
                # "" (the Task's default) means the model kind's runtime, as in `modelpipe deploy`.
                serving_runtime=str(defaults["serving-runtime"] or SERVING_RUNTIMES["text-to-image"]),
                runtime_image="quay.io/modelpipe/diffusers-runtime@sha256:" + "0" * 64,
                storage_key=f"aws-connection-{defaults['data-connection']}",
                service_account="modelpipe-runtime",
                registered_model_id="1",
                model_version_id="2",
                registry_name="registry",
                deployment_mode=mode,
            )
        )
        where = f"InferenceService from modelpipe deploy ({mode})"
        problems += _fits_runtime(isvc, runtimes, specs, where)
        runtime = runtimes.get(isvc["spec"]["predictor"]["model"]["runtime"])
        if runtime is not None and "v1" not in runtime["spec"].get("protocolVersions", []):
            problems.append(
                f"ServingRuntime {runtime['metadata']['name']}: protocolVersions lacks v1 (benchmark uses V1)"
            )
    llm = build_inference_service(
        IsvcSpec(
            name="qwen",
            namespace="modelpipe",
            model_uri="s3://modelpipe/models/qwen/v1",
            serving_runtime=SERVING_RUNTIMES["text-generation"],
            model_format=MODEL_FORMATS["text-generation"],
            runtime_args=tuple(LLM_OPTIONS.server_args()),
            storage_key=f"aws-connection-{defaults['data-connection']}",
            resources=Resources(gpus=2),
        )
    )
    problems += _fits_runtime(llm, runtimes, specs, "text-generation InferenceService from modelpipe deploy")
    return problems


def _fits_runtime(isvc: Doc, runtimes: dict[str, Doc], specs: Path, where: str) -> Problems:
    schema = crd_schema(specs, "serving.kserve.io", "InferenceService", "v1beta1")
    assert schema is not None
    problems = schema_errors(schema, isvc, where)
    model = isvc["spec"]["predictor"]["model"]
    runtime = runtimes.get(model["runtime"])
    if runtime is None:
        return [*problems, f"{where}: runtime {model['runtime']!r} is not a ServingRuntime in gitops/base"]
    formats = {f["name"] for f in runtime["spec"].get("supportedModelFormats", [])}
    if model["modelFormat"]["name"] not in formats:
        problems.append(
            f"{where}: model format {model['modelFormat']['name']!r} not supported by "
            f"ServingRuntime {model['runtime']} ({sorted(formats)})"
        )
    return problems


def default_cell(param: Doc) -> str:
    """How a README table shows a param's default: the YAML default, exactly."""
    if "default" not in param:
        return "*(required)*"
    default = param["default"]
    if isinstance(default, list):
        return f"`{json.dumps(default)}`"
    return f"`{default}`" if default != "" else '`""`'


def param_rows(spec: Doc) -> dict[str, tuple[str, str]]:
    """``name -> (default cell, description)`` as the README tables show each param."""
    return {
        p["name"]: (default_cell(p), " ".join(str(p.get("description", "")).split()))
        for p in spec.get("params", [])
    }


def readme_param_rows(section: str) -> dict[str, tuple[str, str]]:
    """The ``| `param` | default | description |`` rows of a README section's params table."""
    table = section.split("| Param |", 1)[1].split("\n\n", 1)[0] if "| Param |" in section else ""
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (.*?) \| (.*) \|$", table, flags=re.MULTILINE)
    return {name: (default, description) for name, default, description in rows}


def _table_problems(where: str, documented: dict[str, tuple[str, str]], spec: Doc) -> Problems:
    problems = []
    for name, (default, description) in param_rows(spec).items():
        if name not in documented:
            continue  # reported as "not documented" by the caller
        if documented[name][0] != default:
            problems.append(
                f"{where}: param {name!r} documented default {documented[name][0]} != YAML {default}"
            )
        if documented[name][1] != description:
            problems.append(f"{where}: param {name!r} description differs from the YAML")
    problems += [
        f"{where}: documents param {name!r} the YAML lacks" for name in documented.keys() - param_rows(spec)
    ]
    return problems


def check_pipelines_readme(root: Path) -> Problems:
    """pipelines/README.md documents each Pipeline's params with the YAML's exact defaults."""
    text = (root / "pipelines" / "README.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## ([a-z-]+)\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL))
    problems = []
    for name, pipeline in pipelines_by_name(root).items():
        if name not in sections:
            problems.append(f"pipelines/README.md: no section for Pipeline {name}")
            continue
        documented = readme_param_rows(sections[name])
        problems += [
            f"pipelines/README.md {name}: param {p!r} not documented"
            for p in param_rows(pipeline["spec"])
            if p not in documented
        ]
        problems += _table_problems(f"pipelines/README.md {name}", documented, pipeline["spec"])
    return problems


def check_tasks_readme(root: Path) -> Problems:
    """tasks/README.md has a section per Task naming each of its params (with the YAML's exact default and
    description), results and workspaces."""
    text = (root / "tasks" / "README.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## ([a-z-]+)\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL))
    problems = []
    for name, task in tasks_by_name(root).items():
        section = sections.get(name)
        if section is None:
            problems.append(f"tasks/README.md: no section for Task {name}")
            continue
        for field in ("params", "results", "workspaces"):
            problems += [
                f"tasks/README.md {name}: {field[:-1]} {item['name']!r} not documented"
                for item in task["spec"].get(field, [])
                if f"`{item['name']}`" not in section
            ]
        problems += _table_problems(f"tasks/README.md {name}", readme_param_rows(section), task["spec"])
        if "Example" not in section:
            problems.append(f"tasks/README.md {name}: no example")
    return problems


def check_runtime_args(root: Path, python: str = sys.executable) -> Problems:
    """The ServingRuntime's container args parse with the runtime's own parser (diffusers_runtime), its
    port matches --http_port, and readiness asks /v2/models/{{.Name}}/ready."""
    problems = []
    for runtime in runtimes_serving(root, MODEL_FORMATS["text-to-image"]):
        container = runtime["spec"]["containers"][0]
        args = [a.replace("{{.Name}}", "sd-turbo") for a in container.get("args", [])]
        code = "import sys; from diffusers_runtime.__main__ import parse_args; parse_args(sys.argv[1:])"
        proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, check=False)
        where = f"ServingRuntime {runtime['metadata']['name']}"
        if proc.returncode != 0:
            problems.append(f"{where}: args rejected by the runtime: {proc.stderr.strip()[-400:]}")
        ports = {p["containerPort"] for p in container.get("ports", [])}
        port = next((a.split("=", 1)[1] for a in args if a.startswith("--http_port=")), "8080")
        if ports != {int(port)}:
            problems.append(f"{where}: container ports {sorted(ports)} do not match --http_port={port}")
        probe = container.get("readinessProbe", {}).get("httpGet", {})
        if probe.get("path") != "/v2/models/{{.Name}}/ready" or str(probe.get("port")) != port:
            problems.append(f"{where}: readinessProbe must GET /v2/models/{{{{.Name}}}}/ready on {port}")
    return problems


def runtimes_serving(root: Path, model_format: str) -> list[Doc]:
    """The rendered ServingRuntimes in gitops/base that list ``model_format`` in supportedModelFormats."""
    return [
        d
        for d in rendered(root, "gitops/base")
        if d["kind"] == "ServingRuntime"
        and model_format in {f["name"] for f in d["spec"].get("supportedModelFormats", [])}
    ]


_VLLM_PARSE = (
    "import sys\n"
    "from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "validate_parsed_serve_args(make_arg_parser(FlexibleArgumentParser()).parse_args(sys.argv[1:]))\n"
)


def check_vllm_runtime_args(root: Path, python: str) -> Problems:
    """The vLLM ServingRuntime starts the OpenAI server, and its args plus the ones `modelpipe deploy`
    appends (every vLLM option set) parse with vLLM's own parser; port, probes and model path agree."""
    problems = []
    runtimes = runtimes_serving(root, MODEL_FORMATS["text-generation"])
    if not runtimes:
        return ["gitops/base: no ServingRuntime supports the vLLM model format"]
    for runtime in runtimes:
        container = runtime["spec"]["containers"][0]
        where = f"ServingRuntime {runtime['metadata']['name']}"
        if container.get("command") != ["python", "-m", "vllm.entrypoints.openai.api_server"]:
            problems.append(f"{where}: command must be python -m vllm.entrypoints.openai.api_server")
        args = [a.replace("{{.Name}}", "qwen") for a in container.get("args", [])]
        if "--model=/mnt/models" not in args:
            problems.append(f"{where}: --model=/mnt/models (where KServe puts the model) is missing")
        proc = subprocess.run(
            [python, "-c", _VLLM_PARSE, *args, *LLM_OPTIONS.server_args()],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            problems.append(f"{where}: args rejected by vLLM: {proc.stderr.strip()[-400:]}")
        port = next((a.split("=", 1)[1] for a in args if a.startswith("--port=")), "8000")
        ports = {p["containerPort"] for p in container.get("ports", [])}
        if ports != {int(port)}:
            problems.append(f"{where}: container ports {sorted(ports)} do not match --port={port}")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            get = container.get(probe, {}).get("httpGet", {})
            if get.get("path") != "/health" or str(get.get("port")) != port:
                problems.append(f"{where}: {probe} must GET /health on {port}")
    return problems


METRICS_MODULE = "runtime/diffusers_runtime/metrics.py"
DASHBOARD = "gitops/monitoring/dashboards/diffusers-runtime.json"
_SUFFIXES = {"Histogram": ("_bucket", "_sum", "_count"), "Counter": ("_total",), "Gauge": ("",)}


def exposed_series(metrics_py: str) -> set[str]:
    """Series names the runtime exposes: prometheus_client metrics declared in metrics.py, with suffixes."""
    found = re.findall(r"\b(Histogram|Counter|Gauge)\(\s*\"([a-z_:][a-z0-9_:]*)\"", metrics_py)
    series = set()
    for kind, name in found:
        base = name.removesuffix("_total") if kind == "Counter" else name
        series |= {base + suffix for suffix in _SUFFIXES[kind]}
    return series


def check_monitoring_metrics(root: Path) -> Problems:
    """The PrometheusRule and the Grafana dashboard query only series the runtime exposes."""
    path = root / METRICS_MODULE
    if not path.is_file():
        return [f"{METRICS_MODULE}: missing"]
    series = exposed_series(path.read_text(encoding="utf-8"))
    if not series:
        return [f"{METRICS_MODULE}: declares no metrics"]
    exprs: list[tuple[str, str]] = []
    for doc in rendered(root, "gitops/monitoring"):
        if doc["kind"] == "PrometheusRule":
            exprs += [
                (f"PrometheusRule {rule.get('alert') or rule.get('record')}", str(rule["expr"]))
                for group in doc["spec"]["groups"]
                for rule in group["rules"]
            ]
    dashboard = json.loads((root / DASHBOARD).read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        if not panel.get("targets"):
            exprs.append((f"dashboard panel {panel['title']!r}", "<no targets>"))
        exprs += [(f"dashboard panel {panel['title']!r}", t["expr"]) for t in panel.get("targets", [])]
    exprs += [
        (f"dashboard variable {v['name']}", str(v.get("query", ""))) for v in dashboard["templating"]["list"]
    ]
    problems = []
    for where, expr in exprs:
        if expr == "<no targets>":
            problems.append(f"{where}: no queries")
        # Recording-rule names (model_name:diffusers_...:p95_5m) are ours, not runtime series.
        used = set(re.findall(r"(?<![\w:])(diffusers_[a-z0-9_]+)", expr))
        problems += [f"{where}: queries {name}, which the runtime does not expose" for name in used - series]
    return problems


def copy_tree(root: Path, dest: Path) -> Path:
    """A copy of the files the checks read (no .git or node_modules; .venv linked, not copied)."""
    for name in ("tasks", "pipelines", "pipelineruns", "gitops"):
        shutil.copytree(root / name, dest / name)
    # The run scripts and deploy.sh render with modelpipe's modules from the copy's tools/ (PYTHONPATH),
    # run by the project's .venv python.
    if (root / ".venv").exists():
        (dest / ".venv").symlink_to((root / ".venv").resolve())
    shutil.copytree(
        root / "tools" / "modelpipe",
        dest / "tools" / "modelpipe",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in (*SCRIPTS[:3], *DOCS, ".env.template", *CONTAINERFILES, METRICS_MODULE):
        if (root / name).exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, dest / name)
    return dest


CheckFn = Callable[[Path], Problems]
