"""Reading tekton.dev/v1 Task and Pipeline YAML into ``model`` objects, checked field by field.

Unknown fields are errors (as the Tekton webhook rejects them); fields the runner cannot honour on the host
are rejected by name with UnsupportedTektonFeatureError. Pipeline-level features are rejected at load;
Task-level ones are recorded on the Task and rejected before that Task runs (a Task a `when` skips may carry
a feature only a cluster honours).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set
from pathlib import Path
from typing import Any

import yaml

from modelpipe.errors import TektonSpecError, UnsupportedTektonFeatureError
from modelpipe.local.tekton.model import (
    EnvVar,
    KeyRef,
    ParamSpec,
    ParamValue,
    Pipeline,
    PipelineResult,
    PipelineTask,
    ResultDecl,
    Step,
    Task,
    TaskRef,
    WhenExpression,
    WorkspaceBinding,
    WorkspaceDecl,
)

API_VERSION = "tekton.dev/v1"
PARAM_TYPES = ("string", "array", "object")

# Fields that have no effect on a host run (scheduling, image, security hints); accepted and documented.
_NO_LOCAL_EFFECT = {
    "image",
    "imagePullPolicy",
    "computeResources",
    "securityContext",
    "displayName",
    "description",
}

_TASK_FIELDS = {"description", "displayName", "params", "results", "steps", "workspaces", "stepTemplate"}
_TASK_UNSUPPORTED = {"sidecars", "volumes"}
_STEP_FIELDS = {
    "name",
    "script",
    "command",
    "args",
    "env",
    "workingDir",
    "onError",
    "timeout",
} | _NO_LOCAL_EFFECT
_STEP_UNSUPPORTED = {
    "volumeMounts",
    "volumeDevices",
    "envFrom",
    "ref",
    "params",
    "results",
    "when",
    "stdoutConfig",
    "stderrConfig",
    "workspaces",
}
_STEP_TEMPLATE_FIELDS = {"env", "workingDir"} | _NO_LOCAL_EFFECT
_STEP_TEMPLATE_UNSUPPORTED = _STEP_UNSUPPORTED | {"command", "args", "script"}
_PARAM_FIELDS = {"name", "type", "default", "description", "properties", "enum"}
_TASK_WS_FIELDS = {"name", "description", "mountPath", "readOnly", "optional"}
_RESULT_FIELDS = {"name", "type", "description", "properties"}
_RESULT_UNSUPPORTED = {"value"}
_PIPELINE_FIELDS = {"description", "displayName", "params", "workspaces", "tasks", "finally", "results"}
_PTASK_FIELDS = {
    "name",
    "taskRef",
    "taskSpec",
    "params",
    "runAfter",
    "when",
    "retries",
    "timeout",
    "workspaces",
    "onError",
    "description",
    "displayName",
}
_PTASK_UNSUPPORTED = {"matrix", "pipelineRef", "pipelineSpec"}
_TASKREF_FIELDS = {"name", "kind", "apiVersion", "resolver", "params"}
_WHEN_FIELDS = {"input", "operator", "values"}
_WHEN_UNSUPPORTED = {"cel"}
_WS_BINDING_FIELDS = {"name", "workspace", "subPath"}
_PIPELINE_RESULT_FIELDS = {"name", "type", "value", "description"}
_ENV_FIELDS = {"name", "value", "valueFrom"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str, where: str) -> float | None:
    """Seconds in a Go duration such as ``1h30m`` or ``90s``; ``0`` means no timeout.

    Raises:
        TektonSpecError: The text is not a Go duration.
    """
    text = str(text).strip()
    if text in {"0", "0s"}:
        return None
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise TektonSpecError(f"{where}: timeout {text!r} is not a duration like 1h30m0s")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _fields(obj: Any, where: str, allowed: set[str], unsupported: Set[str] = frozenset()) -> list[str]:
    """Check ``obj`` is a mapping with only known fields; return the unsupported ones present."""
    if not isinstance(obj, Mapping):
        raise TektonSpecError(f"{where}: expected a mapping, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed - unsupported)
    if unknown:
        raise TektonSpecError(f"{where}: unknown field(s) {', '.join(unknown)}")
    return sorted(set(obj) & unsupported)


def _reject(found: Sequence[str], where: str) -> None:
    if found:
        raise UnsupportedTektonFeatureError(
            f"{where}: {', '.join(found)} not supported by the local runner",
            fix="run this on a cluster, or remove the feature (see tools/modelpipe/local/tekton/README.md)",
        )


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key) or []
    if not isinstance(value, list):
        raise TektonSpecError(f"{where}: {key} must be a list")
    return value


def _unique(names: Sequence[str], what: str, where: str) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise TektonSpecError(f"{where}: duplicate {what} name(s) {', '.join(sorted(seen))}")


def _value(raw: Any, where: str) -> ParamValue:
    if isinstance(raw, list):
        return [str(v) for v in raw]
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if raw is None:
        raise TektonSpecError(f"{where}: value is empty")
    return str(raw)


def _param_spec(raw: Any, where: str) -> ParamSpec:
    _fields(raw, where, _PARAM_FIELDS)
    name = str(raw.get("name") or "")
    if not name:
        raise TektonSpecError(f"{where}: param without a name")
    default = _value(raw["default"], f"{where} param {name} default") if "default" in raw else None
    inferred = "array" if isinstance(default, list) else "object" if isinstance(default, dict) else "string"
    ptype = raw.get("type") or ("object" if raw.get("properties") else inferred)
    if ptype not in PARAM_TYPES:
        raise TektonSpecError(f"{where}: param {name} has type {ptype!r}; expected one of {PARAM_TYPES}")
    if default is not None and inferred != ptype:
        raise TektonSpecError(f"{where}: param {name} is {ptype} but its default is {inferred}")
    return ParamSpec(
        name=name,
        type=ptype,
        default=default,
        properties=tuple((raw.get("properties") or {}).keys()),
        enum=tuple(str(v) for v in raw.get("enum") or ()),
    )


def _env_var(raw: Any, where: str) -> EnvVar:
    _fields(raw, where, _ENV_FIELDS)
    name = str(raw.get("name") or "")
    source = raw.get("valueFrom")
    if source is None:
        return EnvVar(name=name, value=str(raw.get("value", "")))
    at = f"{where} env {name} valueFrom"
    _reject(_fields(source, at, {"secretKeyRef", "configMapKeyRef"}, {"fieldRef", "resourceFieldRef"}), at)
    kind = "secret" if "secretKeyRef" in source else "configMap"
    ref = source.get("secretKeyRef") or source.get("configMapKeyRef")
    _fields(ref, f"{where} env {name} {kind}KeyRef", {"name", "key", "optional"})
    return EnvVar(
        name=name,
        key_ref=KeyRef(
            kind=kind, name=str(ref.get("name", "")), key=str(ref["key"]), optional=bool(ref.get("optional"))
        ),
    )


def _step(raw: Any, index: int, template: Mapping[str, Any], where: str) -> tuple[Step, list[str]]:
    name = str((raw or {}).get("name") or f"unnamed-{index}")
    at = f"{where} step {name}"
    found = _fields(raw, at, _STEP_FIELDS, _STEP_UNSUPPORTED)
    if raw.get("script") and raw.get("command"):
        raise TektonSpecError(f"{at}: script cannot be used with command")
    if not raw.get("script") and not raw.get("command") and not found:
        raise TektonSpecError(
            f"{at}: no script or command (image entrypoints are not available locally)",
            fix="give the step a script or a command",
        )
    env = {e["name"]: e for e in template.get("env") or []}
    env.update({e["name"]: e for e in raw.get("env") or []})
    on_error = str(raw.get("onError") or "stopAndFail")
    if on_error not in {"stopAndFail", "continue"}:
        raise TektonSpecError(f"{at}: onError must be stopAndFail or continue, not {on_error!r}")
    step = Step(
        name=name,
        script=raw.get("script"),
        command=tuple(str(c) for c in raw.get("command") or ()),
        args=tuple(str(a) for a in raw.get("args") or ()),
        env=tuple(_env_var(e, at) for e in env.values()),
        working_dir=raw.get("workingDir") or template.get("workingDir"),
        on_error=on_error,
        timeout=parse_duration(raw["timeout"], at) if raw.get("timeout") else None,
    )
    return step, [f"step {name}: {f}" for f in found]


def parse_task_spec(spec: Any, name: str, source: str) -> Task:
    """Build a Task from a ``spec`` mapping (a Task's spec or an embedded taskSpec).

    Raises:
        TektonSpecError: Unknown fields, duplicate names, bad types.
    """
    where = f"Task {name} ({source})"
    found = _fields(spec, where, _TASK_FIELDS, _TASK_UNSUPPORTED)
    template = spec.get("stepTemplate") or {}
    found += [
        f"stepTemplate.{f}"
        for f in _fields(template, f"{where} stepTemplate", _STEP_TEMPLATE_FIELDS, _STEP_TEMPLATE_UNSUPPORTED)
    ]
    params = tuple(_param_spec(p, where) for p in _list(spec, "params", where))
    _unique([p.name for p in params], "param", where)
    workspaces = []
    for ws in _list(spec, "workspaces", where):
        _fields(ws, f"{where} workspace", _TASK_WS_FIELDS)
        workspaces.append(WorkspaceDecl(name=str(ws["name"]), optional=bool(ws.get("optional"))))
    results = []
    for res in _list(spec, "results", where):
        found += [
            f"results.{f}" for f in _fields(res, f"{where} result", _RESULT_FIELDS, _RESULT_UNSUPPORTED)
        ]
        results.append(ResultDecl(name=str(res["name"]), type=str(res.get("type") or "string")))
    steps = []
    raw_steps = _list(spec, "steps", where)
    if not raw_steps:
        raise TektonSpecError(f"{where}: no steps")
    for index, raw in enumerate(raw_steps):
        step, step_found = _step(raw, index, template, where)
        steps.append(step)
        found += step_found
    _unique([s.name for s in steps], "step", where)
    _unique([w.name for w in workspaces], "workspace", where)
    _unique([r.name for r in results], "result", where)
    return Task(
        name=name,
        params=params,
        workspaces=tuple(workspaces),
        results=tuple(results),
        steps=tuple(steps),
        source=source,
        unsupported=tuple(found),
    )


def _document(doc: Any, kind: str, source: str) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(doc, Mapping):
        raise TektonSpecError(f"{source}: not a YAML mapping")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != kind:
        raise TektonSpecError(
            f"{source}: expected apiVersion {API_VERSION} kind {kind}, "
            f"got {doc.get('apiVersion')} {doc.get('kind')}"
        )
    name = (doc.get("metadata") or {}).get("name")
    if not name:
        raise TektonSpecError(f"{source}: metadata.name missing")
    return str(name), doc.get("spec") or {}


def parse_task(doc: Any, source: str) -> Task:
    """Build a Task from a whole ``kind: Task`` document."""
    name, spec = _document(doc, "Task", source)
    return parse_task_spec(spec, name, source)


def _when(raw: Any, where: str) -> WhenExpression:
    _reject(_fields(raw, f"{where} when", _WHEN_FIELDS, _WHEN_UNSUPPORTED), f"{where} when")
    operator = str(raw.get("operator", ""))
    if operator not in {"in", "notin"}:
        raise TektonSpecError(f"{where}: when operator must be in or notin, not {operator!r}")
    values = raw.get("values")
    if isinstance(values, str):
        return WhenExpression(input=str(raw.get("input", "")), operator=operator, values=values)
    if not isinstance(values, list) or not values:
        raise TektonSpecError(f"{where}: when values must be a non-empty list")
    return WhenExpression(
        input=str(raw.get("input", "")), operator=operator, values=tuple(str(v) for v in values)
    )


def _task_ref(raw: Any, where: str) -> TaskRef:
    _fields(raw, f"{where} taskRef", _TASKREF_FIELDS)
    kind = raw.get("kind") or "Task"
    if raw.get("apiVersion") or kind != "Task":
        raise UnsupportedTektonFeatureError(
            f"{where}: taskRef kind {kind} apiVersion {raw.get('apiVersion') or '-'} "
            "(custom tasks / ClusterTask)"
            " not supported by the local runner",
            fix="reference a Task from tasks/ or a resolver listed in the local equivalents table",
        )
    if raw.get("resolver"):
        params = {}
        for p in raw.get("params") or []:
            params[str(p["name"])] = str(p.get("value"))
        return TaskRef(resolver=str(raw["resolver"]), resolver_params=params)
    if not raw.get("name"):
        raise TektonSpecError(f"{where}: taskRef has neither name nor resolver")
    return TaskRef(name=str(raw["name"]))


def _pipeline_task(raw: Any, where: str, is_finally: bool) -> PipelineTask:
    name = str((raw or {}).get("name") or "")
    at = f"{where} task {name}"
    _reject(_fields(raw, at, _PTASK_FIELDS, _PTASK_UNSUPPORTED), at)
    if not name:
        raise TektonSpecError(f"{where}: a task has no name")
    if bool(raw.get("taskRef")) == bool(raw.get("taskSpec")):
        raise TektonSpecError(f"{at}: exactly one of taskRef or taskSpec is required")
    if is_finally and raw.get("runAfter"):
        raise TektonSpecError(f"{at}: finally tasks cannot use runAfter")
    spec = raw.get("taskSpec")
    if spec is not None:
        spec = {k: v for k, v in spec.items() if k not in {"metadata", "apiVersion", "kind"}}
    params: dict[str, ParamValue] = {}
    for p in _list(raw, "params", at):
        _fields(p, f"{at} param", {"name", "value"})
        if p["name"] in params:
            raise TektonSpecError(f"{at}: param {p['name']} given twice")
        params[str(p["name"])] = _value(p.get("value"), f"{at} param {p['name']}")
    bindings = []
    for ws in _list(raw, "workspaces", at):
        _fields(ws, f"{at} workspace", _WS_BINDING_FIELDS)
        bindings.append(
            WorkspaceBinding(name=str(ws["name"]), workspace=ws.get("workspace"), sub_path=ws.get("subPath"))
        )
    on_error = str(raw.get("onError") or "stopAndFail")
    if on_error not in {"stopAndFail", "continue"}:
        raise TektonSpecError(f"{at}: onError must be stopAndFail or continue, not {on_error!r}")
    retries = raw.get("retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise TektonSpecError(f"{at}: retries must be a non-negative integer")
    return PipelineTask(
        name=name,
        task_ref=_task_ref(raw["taskRef"], at) if raw.get("taskRef") else None,
        task_spec=parse_task_spec(spec, name, f"{where} taskSpec") if spec is not None else None,
        params=params,
        run_after=tuple(str(r) for r in raw.get("runAfter") or ()),
        when=tuple(_when(w, at) for w in _list(raw, "when", at)),
        retries=retries,
        timeout=parse_duration(raw["timeout"], at) if raw.get("timeout") else None,
        workspaces=tuple(bindings),
        on_error=on_error,
    )


def parse_pipeline(doc: Any, source: str) -> Pipeline:
    """Build a Pipeline from a ``kind: Pipeline`` document.

    Raises:
        TektonSpecError: Unknown fields, duplicate or unknown names.
        UnsupportedTektonFeatureError: A pipeline-level feature the runner cannot honour (matrix, ...).
    """
    name, spec = _document(doc, "Pipeline", source)
    where = f"Pipeline {name} ({source})"
    _fields(spec, where, _PIPELINE_FIELDS)
    params = tuple(_param_spec(p, where) for p in _list(spec, "params", where))
    workspaces = []
    for ws in _list(spec, "workspaces", where):
        _fields(ws, f"{where} workspace", {"name", "description", "optional"})
        workspaces.append(WorkspaceDecl(name=str(ws["name"]), optional=bool(ws.get("optional"))))
    tasks = tuple(_pipeline_task(t, where, False) for t in _list(spec, "tasks", where))
    finally_tasks = tuple(_pipeline_task(t, where, True) for t in _list(spec, "finally", where))
    if not tasks:
        raise TektonSpecError(f"{where}: no tasks")
    results = []
    for res in _list(spec, "results", where):
        _fields(res, f"{where} result", _PIPELINE_RESULT_FIELDS)
        results.append(
            PipelineResult(
                name=str(res["name"]),
                value=_value(res.get("value"), f"{where} result"),
                type=str(res.get("type") or "string"),
            )
        )
    _unique([p.name for p in params], "param", where)
    _unique([w.name for w in workspaces], "workspace", where)
    _unique([t.name for t in tasks + finally_tasks], "task", where)
    _unique([r.name for r in results], "result", where)
    return Pipeline(
        name=name,
        params=params,
        workspaces=tuple(workspaces),
        tasks=tasks,
        finally_tasks=finally_tasks,
        results=tuple(results),
        source=source,
    )


def load_yaml(path: Path) -> Any:
    """The single YAML document in ``path``.

    Raises:
        TektonSpecError: Missing file, invalid YAML or several documents.
    """
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except FileNotFoundError as err:
        raise TektonSpecError(f"{path}: file not found") from err
    except yaml.YAMLError as err:
        raise TektonSpecError(_yaml_error_line(path, err)) from err
    if len(docs) != 1:
        raise TektonSpecError(f"{path}: expected one YAML document, found {len(docs)}")
    return docs[0]


def _yaml_error_line(path: Path, err: yaml.YAMLError) -> str:
    """``PATH:LINE:COL: invalid YAML: what`` on one line (PyYAML's own text spans several, with a caret)."""
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    what = ", ".join(part for part in (getattr(err, "context", None), getattr(err, "problem", None)) if part)
    return f"{where}: invalid YAML: {what or str(err).splitlines()[0]}"


def load_pipeline(path: Path) -> Pipeline:
    """Parse the Pipeline in ``path``."""
    return parse_pipeline(load_yaml(path), str(path))


def load_tasks(tasks_dir: Path) -> dict[str, Task]:
    """Every Task under ``tasks_dir`` (``*.yaml``/``*.yml``, recursively), by metadata.name.

    Raises:
        TektonSpecError: The folder is missing, a file is invalid or two Tasks share a name.
    """
    if not tasks_dir.is_dir():
        raise TektonSpecError(f"tasks folder {tasks_dir} not found", fix="pass --tasks-dir")
    tasks: dict[str, Task] = {}
    for path in sorted([*tasks_dir.rglob("*.yaml"), *tasks_dir.rglob("*.yml")]):
        doc = load_yaml(path)
        if not isinstance(doc, Mapping) or doc.get("kind") != "Task":
            continue
        task = parse_task(doc, str(path))
        if task.name in tasks:
            raise TektonSpecError(f"Task {task.name} defined twice: {tasks[task.name].source} and {path}")
        tasks[task.name] = task
    return tasks
