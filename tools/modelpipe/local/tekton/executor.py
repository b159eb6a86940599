"""Running one Task on the host: steps as processes, secrets mapped, logs streamed and kept, results read."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from modelpipe.errors import LocalRunError, UnsupportedTektonFeatureError
from modelpipe.local.tekton.model import KeyRef, ParamValue, Step, Task
from modelpipe.local.tekton.resolvers import BUILTINS, BuiltinContext
from modelpipe.local.tekton.substitution import Scope, substitute_list, substitute_string
from modelpipe.redaction import SECRET_ENV_NAMES, redact, register_secret

# Tekton packs all results of a task pod into one termination message of this size.
MAX_RESULTS_BYTES = 4096
DEFAULT_SHEBANG = "#!/bin/sh\nset -e\n"
KILL_GRACE_SECONDS = 5.0
# Tekton documents /tekton/results as the results folder of every step; steps may name it literally.
TEKTON_RESULTS_DIR = "/tekton/results"
# Writing a script while another thread forks lets that child inherit the open file, and exec then fails
# with ETXTBSY; writing scripts and spawning under one lock avoids it.
_SPAWN_LOCK = threading.Lock()
# Host variables a step sees besides its own env (a pod sees only what its Task declares).
PASSTHROUGH_ENV = (
    "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM",
    "MODELPIPE_LOG_LEVEL", "MODELPIPE_DEBUG", "HF_HOME", "HF_HUB_OFFLINE", "XDG_CACHE_HOME",
)  # fmt: skip


def step_base_env(environ: Mapping[str, str], venv_bin: Path) -> dict[str, str]:
    """The environment every step starts from: a few host variables and PATH with ``venv_bin`` first."""
    env = {name: environ[name] for name in PASSTHROUGH_ENV if name in environ}
    env["PATH"] = os.pathsep.join([str(venv_bin), environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")])
    return env


def read_secrets_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, optional ``export`` and quotes), as in a ``.env`` file.

    Raises:
        LocalRunError: The file is missing or a line is not ``KEY=VALUE``.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as err:
        raise LocalRunError(f"secrets file {path} not found") from err
    values = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise LocalRunError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


_SECRET_KEY = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|_KEY$|_KEY_ID$", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True for keys whose values must be masked: the known secret names and token/password/key-like keys.

    A data-connection Secret also holds plain settings (endpoint, bucket, region); masking those would
    hide e.g. the bucket name in every URI.
    """
    return key in SECRET_ENV_NAMES or bool(_SECRET_KEY.search(key))


@dataclass(frozen=True)
class LocalValues:
    """Local stand-in for Secrets and ConfigMaps: a key is looked up by its key name only.

    ``sources`` are searched in order: ``modelpipe local run`` uses (secrets file, process env);
    ``modelpipe local import`` uses (secrets file, the stand-ins' own values, process env). Values read
    for a secretKeyRef with a secret-like key (``is_secret_key``) are registered for redaction.
    """

    sources: tuple[Mapping[str, str], ...] = ()

    def resolve(self, ref: KeyRef, where: str) -> str | None:
        """The value for ``ref``, None when optional and absent.

        Raises:
            LocalRunError: A required key is nowhere to be found.
        """
        for source in self.sources:
            if ref.key in source:
                if ref.kind == "secret" and is_secret_key(ref.key):
                    register_secret(source[ref.key])
                return source[ref.key]
        if ref.optional:
            return None
        raise LocalRunError(
            f"{where}: {ref.kind} {ref.name!r} key {ref.key} has no local value",
            fix=f"export {ref.key} or put {ref.key}=... in the secrets file (--secrets-file)",
        )


class LogSink:
    """Writes step output lines, prefixed ``[task/step]``, to one stream from many threads."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()

    def line(self, prefix: str, text: str) -> None:
        with self._lock:
            self._stream.write(f"[{prefix}] {text}\n")
            self._stream.flush()


class ProcessTable:
    """Running step processes, so an interrupt can stop their process groups."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        """Stop every running step and refuse new ones (an interrupted run must not start retries)."""
        self.cancelled.set()
        with _SPAWN_LOCK, self._lock:
            procs = list(self._procs)
        for proc in procs:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=KILL_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue


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
        failed = _run_builtin(inv, options, results_dir)
        if failed is not None:
            return failed
    else:
        for step in inv.task.steps:
            outcome = _run_step(inv, step, scope, options, deadline)
            if outcome is not None:
                return outcome
    return _read_results(inv, results_dir)


def _run_builtin(inv: TaskInvocation, options: ExecOptions, results_dir: Path) -> TaskAttempt | None:
    step = inv.task.steps[0].name
    log_path = _log_path(inv, step)
    prefix = f"{inv.label}/{step}"
    with log_path.open("w", encoding="utf-8") as log_file:

        def log(text: str) -> None:
            log_file.write(redact(text) + "\n")
            options.sink.line(prefix, redact(text))

        ctx = BuiltinContext(inv.params, inv.workspaces, results_dir, options.source_dir, log)
        assert inv.task.builtin is not None
        try:
            BUILTINS[inv.task.builtin](ctx)
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
    assert isinstance(results_dir, str)
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
            with _SPAWN_LOCK:
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
            timed_out = _pump(proc, prefix, log_file, options.sink, timeout)
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


def _pump(
    proc: subprocess.Popen[bytes], prefix: str, log_file: IO[str], sink: LogSink, timeout: float | None
) -> bool:
    """Copy output to the log and the sink until the process ends; True if it was killed for the timeout.

    Reads with select and stops shortly after the process exits, so a daemon the step leaves behind
    (the local runtime) holding the pipe cannot hang the run.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    started = time.monotonic()
    pending = b""
    timed_out = False

    def emit(raw: bytes) -> None:
        text = redact(raw.decode("utf-8", errors="replace").rstrip("\r"))
        log_file.write(text + "\n")
        sink.line(prefix, text)

    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                emit(raw)
            continue
        if proc.poll() is not None:
            break
        if timeout is not None and time.monotonic() - started > timeout:
            timed_out = True
            _kill_group(proc)
    if pending:
        emit(pending)
    proc.stdout.close()
    proc.wait()
    log_file.flush()
    return timed_out


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
