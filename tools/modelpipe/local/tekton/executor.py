"""Running one Task on the host: steps as processes, secrets mapped, logs streamed and kept, results read."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelpipe.errors import LocalRunError, UnsupportedTektonFeatureError
from modelpipe.local.tekton.host import SPAWN_LOCK, LocalValues, LogSink, ProcessTable, pump_output
from modelpipe.local.tekton.model import ParamValue, Step, Task
from modelpipe.local.tekton.resolvers import BUILTINS, BuiltinContext
from modelpipe.local.tekton.substitution import Scope, substitute_list, substitute_string
from modelpipe.redaction import redact

# Tekton packs all results of a task pod into one termination message of this size.
MAX_RESULTS_BYTES = 4096
DEFAULT_SHEBANG = "#!/bin/sh\nset -e\n"
# Tekton documents /tekton/results as the results folder of every step; steps may name it literally.
TEKTON_RESULTS_DIR = "/tekton/results"


@dataclass(frozen=True)
class ExecOptions:
    """How steps run: base env, local secret values, source tree for built-ins, where logs go."""

    base_env: Mapping[str, str]
    local_values: LocalValues
    source_dir: Path
    sink: LogSink
    processes: ProcessTable


@dataclass(frozen=True)
class TaskAttempt:
    """One attempt at a Task: success, results, and (on failure) the step, exit code, log and reason."""

    succeeded: bool
    results: dict[str, ParamValue] = field(default_factory=dict)
    step: str | None = None
    exit_code: int | None = None
    log_path: Path | None = None
    reason: str = ""


@dataclass(frozen=True)
class TaskInvocation:
    """A Task ready to run: resolved params, workspace folders, context, folder for logs and results."""

    label: str
    task: Task
    params: Mapping[str, ParamValue]
    workspaces: Mapping[str, Path | None]
    context: Mapping[str, str]
    task_dir: Path
    timeout: float | None
    attempt: int = 0


def _scope(inv: TaskInvocation, results_dir: Path) -> Scope:
    values: dict[str, ParamValue] = {f"params.{k}": v for k, v in inv.params.items()}
    values.update(inv.context)
    for name, path in inv.workspaces.items():
        values[f"workspaces.{name}.path"] = str(path) if path else ""
        values[f"workspaces.{name}.bound"] = "true" if path else "false"
        values[f"workspaces.{name}.claim"] = ""
        values[f"workspaces.{name}.volume"] = name
    for result in inv.task.results:
        values[f"results.{result.name}.path"] = str(results_dir / result.name)
    values["local.results-dir"] = str(results_dir)  # not a Tekton variable: "local" is no namespace
    return Scope(values=values, where=f"task {inv.label}")


def _log_path(inv: TaskInvocation, step: str) -> Path:
    suffix = "" if inv.attempt == 0 else f".retry-{inv.attempt}"
    return inv.task_dir / f"{step}{suffix}.log"


def run_task(inv: TaskInvocation, options: ExecOptions) -> TaskAttempt:
    """Run every step of ``inv.task`` in order; a failing step stops the Task unless its onError is continue.

    Raises:
        UnsupportedTektonFeatureError: The Task uses a feature the runner cannot honour.
        TektonSpecError: A step refers to an unknown variable.
    """
    if inv.task.unsupported:
        raise UnsupportedTektonFeatureError(
            f"task {inv.label} (Task {inv.task.name}, {inv.task.source}): "
            f"{', '.join(inv.task.unsupported)} not supported by the local runner",
            fix="run it on a cluster or skip it with a when expression",
        )
    results_dir = inv.task_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    for stale in results_dir.iterdir():
        stale.unlink()
    scope = _scope(inv, results_dir)
    deadline = time.monotonic() + inv.timeout if inv.timeout else None
    if inv.task.builtin:
        failed = _run_builtin(inv, inv.task.builtin, options, results_dir)
        if failed is not None:
            return failed
    else:
        for step in inv.task.steps:
            outcome = _run_step(inv, step, scope, options, deadline)
            if outcome is not None:
                return outcome
    return _read_results(inv, results_dir)


def _run_builtin(
    inv: TaskInvocation, builtin: str, options: ExecOptions, results_dir: Path
) -> TaskAttempt | None:
    step = inv.task.steps[0].name
    log_path = _log_path(inv, step)
    prefix = f"{inv.label}/{step}"
    with log_path.open("w", encoding="utf-8") as log_file:

        def log(text: str) -> None:
            log_file.write(redact(text) + "\n")
            options.sink.line(prefix, redact(text))

        ctx = BuiltinContext(inv.params, inv.workspaces, results_dir, options.source_dir, log)
        try:
            BUILTINS[builtin](ctx)
        except LocalRunError as err:
            log(f"error: {err.one_line()}")
            return TaskAttempt(False, step=step, exit_code=1, log_path=log_path, reason=err.one_line())
    return None


def _step_env(step: Step, scope: Scope, options: ExecOptions) -> dict[str, str]:
    env = dict(options.base_env)
    for var in step.env:
        if var.key_ref is not None:
            value = options.local_values.resolve(
                var.key_ref, f"{scope.where} step {step.name} env {var.name}"
            )
            if value is None:
                env.pop(var.name, None)
                continue
            env[var.name] = value
        else:
            env[var.name] = _map_paths(substitute_string(var.value or "", scope), scope)
    return env


def _map_paths(text: str, scope: Scope) -> str:
    """Point the literal Tekton results folder at this task's local results folder."""
    results_dir = scope.values.get("local.results-dir")
    if not isinstance(results_dir, str):  # _scope always sets it; a Scope from elsewhere may not
        raise LocalRunError("the local results folder is not set in this task's scope")
    return text.replace(TEKTON_RESULTS_DIR, results_dir)


def _step_argv(inv: TaskInvocation, step: Step, scope: Scope) -> list[str]:
    args = [_map_paths(a, scope) for a in substitute_list(step.args, scope)]
    if step.script is None:
        return [_map_paths(c, scope) for c in substitute_list(step.command, scope)] + args
    script = _map_paths(substitute_string(step.script, scope), scope)
    if not script.startswith("#!"):
        script = DEFAULT_SHEBANG + script
    path = inv.task_dir / "scripts" / step.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script, encoding="utf-8")
    path.chmod(0o755)
    return [str(path), *args]


def _working_dir(inv: TaskInvocation, step: Step, scope: Scope) -> Path:
    if not step.working_dir:
        path = inv.task_dir / "workdir"
    else:
        path = Path(_map_paths(substitute_string(step.working_dir, scope), scope))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LocalRunError(
            f"task {inv.label} step {step.name}: workingDir {path} cannot be created on this host ({err})",
            fix="use $(workspaces.NAME.path) instead of a fixed container path",
        ) from err
    return path


def _run_step(
    inv: TaskInvocation, step: Step, scope: Scope, options: ExecOptions, deadline: float | None
) -> TaskAttempt | None:
    prefix = f"{inv.label}/{step.name}"
    env = _step_env(step, scope, options)
    cwd = _working_dir(inv, step, scope)
    log_path = _log_path(inv, step.name)
    limits = [t for t in (step.timeout, deadline and max(0.0, deadline - time.monotonic())) if t]
    timeout = min(limits) if limits else None
    with log_path.open("w", encoding="utf-8") as log_file:
        argv = [step.name]
        try:
            with SPAWN_LOCK:
                if options.processes.cancelled.is_set():
                    return TaskAttempt(False, step=step.name, log_path=log_path, reason="interrupted")
                argv = _step_argv(inv, step, scope)
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                options.processes.add(proc)
        except OSError as err:
            log_file.write(f"cannot start {argv[0]}: {err}\n")
            options.sink.line(prefix, f"cannot start {argv[0]}: {err}")
            return TaskAttempt(
                False, step=step.name, exit_code=127, log_path=log_path, reason=f"cannot start: {err}"
            )
        try:
            timed_out = pump_output(proc, prefix, log_file, options.sink, timeout)
        finally:
            options.processes.discard(proc)
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    if timed_out:
        reason = f"step {step.name} timed out after {timeout:.0f}s"
        return TaskAttempt(False, step=step.name, exit_code=code, log_path=log_path, reason=reason)
    if code != 0:
        if step.on_error == "continue":
            options.sink.line(prefix, f"exited {code}; onError: continue, so the task goes on")
            return None
        return TaskAttempt(
            False, step=step.name, exit_code=code, log_path=log_path, reason=f"exit code {code}"
        )
    return None


def _read_results(inv: TaskInvocation, results_dir: Path) -> TaskAttempt:
    results: dict[str, ParamValue] = {}
    total = 0
    for decl in inv.task.results:
        path = results_dir / decl.name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        total += len(text.encode())
        if decl.type == "string":
            results[decl.name] = text
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return TaskAttempt(False, reason=f"result {decl.name} is declared {decl.type} but is not JSON")
        if (decl.type == "array" and not isinstance(value, list)) or (
            decl.type == "object" and not isinstance(value, dict)
        ):
            return TaskAttempt(False, reason=f"result {decl.name} is not a JSON {decl.type}")
        results[decl.name] = (
            [str(v) for v in value] if isinstance(value, list) else {k: str(v) for k, v in value.items()}
        )
    if total > MAX_RESULTS_BYTES:
        return TaskAttempt(
            False,
            reason=f"results total {total} bytes, over Tekton's {MAX_RESULTS_BYTES}-byte termination message",
        )
    return TaskAttempt(True, results=results)


def check_task_references(task: Task, label: str, context_names: set[str]) -> None:
    """Substitute every step of ``task`` against placeholders to find unknown variables before anything runs.

    Raises:
        TektonSpecError: A step names an undeclared param, workspace, result or context variable.
    """
    placeholder: dict[str, ParamValue] = {}
    for p in task.params:
        placeholder[f"params.{p.name}"] = (
            ["x"] if p.type == "array" else {k: "x" for k in p.properties} if p.type == "object" else "x"
        )
    for name in context_names:
        placeholder[name] = "x"
    for ws in task.workspaces:
        for attr in ("path", "bound", "claim", "volume"):
            placeholder[f"workspaces.{ws.name}.{attr}"] = "x"
    for result in task.results:
        placeholder[f"results.{result.name}.path"] = "x"
    scope = Scope(values=placeholder, where=f"task {label} (Task {task.name}, {task.source})")
    for step in task.steps:
        if task.builtin:
            break
        if step.script is not None:
            substitute_string(step.script, scope)
        substitute_list(step.command, scope)
        substitute_list(step.args, scope)
        for var in step.env:
            substitute_string(var.value or "", scope)
        substitute_string(step.working_dir or "", scope)
