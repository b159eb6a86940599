"""Everything checked before a local run starts: params, taskRefs, workspaces, references, the DAG."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelpipe.errors import TektonSpecError, UnsupportedTektonFeatureError
from modelpipe.local.tekton.executor import check_task_references
from modelpipe.local.tekton.model import ParamValue, Pipeline, PipelineTask, Task
from modelpipe.local.tekton.params import bind_declared
from modelpipe.local.tekton.resolvers import resolve_task_ref
from modelpipe.local.tekton.substitution import Scope, references, task_references

TASK_CONTEXT = {
    "context.taskRun.name",
    "context.taskRun.namespace",
    "context.taskRun.uid",
    "context.task.name",
    "context.task.retry-count",
}
PIPELINE_CONTEXT = {
    "context.pipelineRun.name",
    "context.pipelineRun.namespace",
    "context.pipelineRun.uid",
    "context.pipeline.name",
    "context.pipelineTask.retries",
}


@dataclass(frozen=True)
class ResolvedPipeline:
    """A Pipeline with params bound, Tasks resolved, workspaces mapped to folders, dependencies known."""

    pipeline: Pipeline
    params: Mapping[str, ParamValue]
    tasks: Mapping[str, Task]
    workspaces: Mapping[str, Path | None]
    deps: Mapping[str, frozenset[str]]
    dag_names: frozenset[str]

    def task_workspaces(self, pt: PipelineTask, task: Task) -> dict[str, Path | None]:
        """Folder of each workspace the Task declares (None when an optional one is unbound)."""
        bindings = {b.name: b for b in pt.workspaces}
        out: dict[str, Path | None] = {}
        for decl in task.workspaces:
            binding = bindings.get(decl.name)
            base = self.workspaces.get(binding.workspace or "") if binding else None
            if binding is None or base is None:
                out[decl.name] = None
                continue
            path = base / binding.sub_path if binding.sub_path else base
            path.mkdir(parents=True, exist_ok=True)
            out[decl.name] = path
        return out


def _placeholder_scope(
    pipeline: Pipeline, tasks: Mapping[str, Task], pt: PipelineTask, in_finally: bool
) -> Scope:
    values: dict[str, ParamValue] = {}
    for p in pipeline.params:
        values[f"params.{p.name}"] = (
            ["x"] if p.type == "array" else {k: "x" for k in p.properties} if p.type == "object" else "x"
        )
    values.update({name: "x" for name in PIPELINE_CONTEXT})
    values.update({f"workspaces.{w.name}.bound": "x" for w in pipeline.workspaces})
    for other in pipeline.tasks:
        if other.name == pt.name:
            continue
        for r in tasks[other.name].results:
            values[f"tasks.{other.name}.results.{r.name}"] = (
                ["x"] if r.type == "array" else {} if r.type == "object" else "x"
            )
        if in_finally:
            values[f"tasks.{other.name}.status"] = "x"
            values[f"tasks.{other.name}.reason"] = "x"
    if in_finally:
        values["tasks.status"] = "x"
    return Scope(values=values, where=f"{pipeline.source} task {pt.name}")


def _check_references(
    pipeline: Pipeline, tasks: Mapping[str, Task], pt: PipelineTask, in_finally: bool
) -> None:
    scope = _placeholder_scope(pipeline, tasks, pt, in_finally)
    texts = [w.input for w in pt.when]
    for value in [*pt.params.values(), *(w.values for w in pt.when)]:
        texts.extend(
            [value] if isinstance(value, str) else list(value.values()) if isinstance(value, dict) else value
        )
    for text in texts:
        for expr in references(text):
            if expr.startswith("tasks.") and ".results." in expr:
                # Object results' keys are only known at run time.
                head = ".".join(expr.split(".")[:4]).split("[")[0]
                if head not in scope.values:
                    raise TektonSpecError(f"{scope.where}: unknown variable $({expr})")
                continue
            scope.lookup(expr)


def _deps(pipeline: Pipeline) -> dict[str, frozenset[str]]:
    names = {t.name for t in pipeline.tasks}
    deps: dict[str, frozenset[str]] = {}
    for pt in pipeline.all_tasks():
        refs = task_references([*pt.params.values(), *(w.input for w in pt.when)])
        refs |= task_references([w.values if isinstance(w.values, str) else list(w.values) for w in pt.when])
        unknown = sorted((set(pt.run_after) | refs) - names)
        if unknown:
            raise TektonSpecError(
                f"{pipeline.source} task {pt.name}: refers to unknown task(s) {', '.join(unknown)}"
            )
        deps[pt.name] = frozenset(set(pt.run_after) | refs)
    _check_acyclic(pipeline, deps)
    return deps


def _check_acyclic(pipeline: Pipeline, deps: Mapping[str, frozenset[str]]) -> None:
    done: set[str] = set()
    remaining = {t.name for t in pipeline.tasks}
    while remaining:
        ready = {n for n in remaining if deps[n] <= done}
        if not ready:
            raise TektonSpecError(f"{pipeline.source}: dependency cycle among {', '.join(sorted(remaining))}")
        done |= ready
        remaining -= ready


def _check_literal_params(pipeline: Pipeline, pt: PipelineTask, task: Task) -> None:
    """Type- and enum-check params whose values hold no variables (the rest is checked when they run)."""
    literal = {
        name: value
        for name, value in pt.params.items()
        if not any(references(text) for text in ([value] if isinstance(value, str) else value))
    }
    specs = [p for p in task.params if p.name in literal]
    bind_declared(specs, literal, f"{pipeline.source} task {pt.name}", f"Task {task.name} ({task.source})")


def _check_workspaces(pipeline: Pipeline, pt: PipelineTask, task: Task) -> None:
    declared = {w.name for w in task.workspaces}
    pipeline_ws = {w.name for w in pipeline.workspaces}
    for binding in pt.workspaces:
        if binding.name not in declared:
            raise TektonSpecError(
                f"{pipeline.source} task {pt.name}: Task {task.name} declares no workspace {binding.name}"
            )
        if binding.workspace not in pipeline_ws:
            raise TektonSpecError(
                f"{pipeline.source} task {pt.name}: binds unknown pipeline workspace {binding.workspace!r}"
            )
    bound = {b.name for b in pt.workspaces}
    missing = [w.name for w in task.workspaces if not w.optional and w.name not in bound]
    if missing:
        raise TektonSpecError(
            f"{pipeline.source} task {pt.name}: workspace(s) {', '.join(missing)} "
            f"of Task {task.name} not bound"
        )


def resolve_pipeline(
    pipeline: Pipeline,
    *,
    task_catalog: Mapping[str, Task],
    params: Mapping[str, ParamValue],
    workspaces: Mapping[str, Path],
    run_dir: Path,
) -> ResolvedPipeline:
    """Check everything that can be checked before running and bind params, Tasks and workspace folders.

    Pipeline workspaces not given are made under ``run_dir/workspaces/`` (like an emptyDir) unless optional.

    Raises:
        TektonSpecError: Unknown task/param/workspace/variable, missing required param, a dependency cycle.
        UnsupportedTektonFeatureError: A Task with a feature the runner cannot honour and no `when` guard.
    """
    where = f"Pipeline {pipeline.name} ({pipeline.source})"
    bound = bind_declared(pipeline.params, params, where, f"Pipeline {pipeline.name}")
    unknown_ws = sorted(set(workspaces) - {w.name for w in pipeline.workspaces})
    if unknown_ws:
        raise TektonSpecError(f"{where}: no workspace named {', '.join(unknown_ws)}")
    tasks: dict[str, Task] = {}
    for pt in pipeline.all_tasks():
        at = f"{pipeline.source} task {pt.name}"
        task = pt.task_spec if pt.task_spec is not None else resolve_task_ref(pt.task_ref, task_catalog, at)  # type: ignore[arg-type]
        if task.unsupported and not pt.when:
            raise UnsupportedTektonFeatureError(
                f"{at} (Task {task.name}, {task.source}): {', '.join(task.unsupported)} "
                "not supported by the local runner",
                fix="run it on a cluster or guard it with a when expression the local run sets to skip",
            )
        tasks[pt.name] = task
    for pt in pipeline.all_tasks():
        task = tasks[pt.name]
        extra = sorted(set(pt.params) - {p.name for p in task.params})
        if extra:
            raise TektonSpecError(
                f"{pipeline.source} task {pt.name}: param(s) {', '.join(extra)} "
                f"not declared by Task {task.name}"
            )
        missing = [p.name for p in task.params if p.default is None and p.name not in pt.params]
        if missing:
            raise TektonSpecError(
                f"{pipeline.source} task {pt.name}: missing required param(s) {', '.join(missing)} "
                f"of Task {task.name}"
            )
        _check_literal_params(pipeline, pt, task)
        _check_workspaces(pipeline, pt, task)
        _check_references(pipeline, tasks, pt, pt in pipeline.finally_tasks)
        check_task_references(task, pt.name, TASK_CONTEXT)
    deps = _deps(pipeline)
    folders: dict[str, Path | None] = {}
    for ws in pipeline.workspaces:
        if ws.name in workspaces:
            folders[ws.name] = workspaces[ws.name].resolve()
            folders[ws.name].mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        elif ws.optional:
            folders[ws.name] = None
        else:
            folders[ws.name] = (run_dir / "workspaces" / ws.name).resolve()
    return ResolvedPipeline(
        pipeline=pipeline,
        params=bound,
        tasks=tasks,
        workspaces=folders,
        deps=deps,
        dag_names=frozenset(t.name for t in pipeline.tasks),
    )
