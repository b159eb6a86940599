"""One home for the model servers a local deploy leaves running: their state record, reuse and stop.

The diffusers runtime and the vLLM server differ only in their module, state file, log file and
readiness probe (a ``ServedProgram``); recording, the recycled-pid guard, reuse-or-restart, start-up
failure reports and stopping are written once here, over ``modelpipe.processes``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from modelpipe.errors import ConfigError, DeployError
from modelpipe.files import write_text_atomic
from modelpipe.processes import HOST, alive, log_tail, port_is_free, start_process, stop_group, wait_ready

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
# vLLM takes a while to release its KV cache and workers; the runtime stops in a few seconds.
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class ServedProgram:
    """What differs between the programs a local deploy serves a model with.

    Attributes:
        label: How logs and messages name it ("runtime", "vLLM").
        module: ``python -m MODULE``; a recorded pid must still run it before we signal it.
        state_file: The record's file name in the state folder.
        log_file: Its stdout/stderr file name in the state folder.
        ready: ``ready(endpoint_url, model_name)`` is True once it serves that model.
    """

    label: str
    module: str
    state_file: str
    log_file: str
    ready: Callable[[str, str], bool]


@dataclass(frozen=True)
class ServedState:
    """What a state file records about a started server (``module`` lets a stop need no program)."""

    pid: int
    port: int
    model_name: str
    model_uri: str
    args: list[str]
    log_file: str
    started_at: float
    module: str

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True)
class LocalRuntime:
    """A running local model server.

    Attributes:
        pid: Process id (also its process group id; it runs in its own session).
        endpoint_url: ``http://127.0.0.1:PORT``.
        model_name: Served model name.
        log_file: Where its stdout/stderr go.
        started: False when an identical server was already running and was reused.
    """

    pid: int
    endpoint_url: str
    model_name: str
    log_file: Path
    started: bool


_STATE_KEYS = frozenset(field.name for field in fields(ServedState))


def runs_module(pid: int, module: str) -> bool:
    """Guard against a recycled pid: the process must run ``python -m module``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return module.encode() in cmdline


def _parse_state(path: Path, data: Any) -> ServedState:
    if not isinstance(data, dict) or set(data) != _STATE_KEYS:
        raise DeployError(
            f"{path} is not a local server state file (needs {', '.join(sorted(_STATE_KEYS))})",
            fix="stop the process it names by hand, delete the file and re-run",
        )
    return ServedState(**data)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DeployError(
            f"{path} is not a local server state file ({err})", fix="delete it and re-run"
        ) from err


def read_state(state_dir: Path, program: ServedProgram) -> ServedState | None:
    """The ``program`` server recorded in ``state_dir``, or None.

    Raises:
        DeployError: The state file is damaged.
    """
    path = state_dir / program.state_file
    try:
        data = _load(path)
    except FileNotFoundError:
        return None
    return _parse_state(path, data)


def recorded(state_dir: Path) -> list[tuple[Path, ServedState]]:
    """Every server recorded in ``state_dir`` (state files are the JSON objects that name a pid).

    Raises:
        DeployError: A state file is damaged.
    """
    found = []
    for path in sorted(state_dir.glob("*.json")):
        data = _load(path)
        if isinstance(data, dict) and "pid" in data:
            found.append((path, _parse_state(path, data)))
    return found


def _signal(pid: int, module: str) -> bool:
    """SIGTERM, then SIGKILL, the group of ``pid`` if it still runs ``module``. True if it ran."""
    if not (alive(pid) and runs_module(pid, module)):
        return False
    if not stop_group(pid, timeout=STOP_TIMEOUT):
        raise DeployError(f"{module} process {pid} survived SIGKILL")
    logger.info("stopped local %s server %d", module, pid)
    return True


def _stop(path: Path, state: ServedState) -> bool:
    running = _signal(state.pid, state.module)
    path.unlink(missing_ok=True)
    return running


def stop_recorded(state_dir: Path) -> bool:
    """Stop whatever server ``state_dir`` records (its whole process group). False if none ran.

    A recorded pid that no longer runs the recorded module (gone, or reused by another program) is
    left alone; its record is removed either way.

    Raises:
        DeployError: A state file is damaged, or a server survived SIGKILL.
    """
    if not state_dir.is_dir():
        return False
    return any([_stop(path, state) for path, state in recorded(state_dir)])


def stop_served(state_dir: Path, program: ServedProgram) -> bool:
    """Stop the ``program`` server recorded in ``state_dir``. False if none ran.

    Raises:
        DeployError: The state file is damaged, or the server survived SIGKILL.
    """
    state = read_state(state_dir, program)
    return state is not None and _stop(state_dir / program.state_file, state)


def stop_pid(pid: int, program: ServedProgram) -> bool:
    """Stop a ``program`` server by pid. False if it was not running.

    Raises:
        DeployError: The pid belongs to some other program, or it survived SIGKILL.
    """
    if alive(pid) and not runs_module(pid, program.module):
        raise DeployError(f"process {pid} is not a {program.module} process; not stopping it")
    return _signal(pid, program.module)


@dataclass(frozen=True)
class ServeRequest:
    """What a local deploy asks a server for; an identical recorded one that answers is reused."""

    model_name: str
    model_uri: str
    port: int
    args: list[str]


def reuse_or_clear(state_dir: Path, program: ServedProgram, request: ServeRequest) -> LocalRuntime | None:
    """The recorded ``program`` server if it serves exactly ``request``; else stop whatever is recorded.

    One local deployment per state folder: a server of another program recorded there is stopped too.
    Returns None when the caller must start a server, after checking that the port is free.

    Raises:
        ConfigError: The port is taken by something else.
        DeployError: A state file is damaged, or a recorded server survived SIGKILL.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(state_dir, program)
    if state is not None:
        same = (state.model_name, state.model_uri, state.port, state.args) == (
            request.model_name,
            request.model_uri,
            request.port,
            request.args,
        )
        if (
            same
            and alive(state.pid)
            and runs_module(state.pid, program.module)
            and program.ready(state.endpoint_url, request.model_name)
        ):
            logger.info(
                "local %s %d already serves %s at %s",
                program.label,
                state.pid,
                request.model_name,
                state.endpoint_url,
            )
            return LocalRuntime(
                state.pid, state.endpoint_url, request.model_name, Path(state.log_file), started=False
            )
    if recorded(state_dir):
        logger.info("replacing the local server recorded in %s", state_dir)
        stop_recorded(state_dir)
    if not port_is_free(request.port, HOST):
        raise ConfigError(
            f"port {request.port} on {HOST} is already in use", fix="pass another --port or stop that server"
        )
    return None


def launch(
    state_dir: Path,
    program: ServedProgram,
    request: ServeRequest,
    *,
    command: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    poll_seconds: float,
    check: str,
) -> LocalRuntime:
    """Start ``command`` detached (own session; it outlives us), record it and wait until it serves.

    Args:
        state_dir: The state folder (cwd, record, log).
        program: Which server this is.
        request: What it serves (recorded for the next reuse check).
        command: Its argv; secrets go through ``env``.
        env: Its environment.
        timeout: Seconds to wait for ready.
        poll_seconds: Readiness poll interval.
        check: What to check when it exits early (goes into the error's fix).

    Raises:
        DeployError: It exited or was not ready in ``timeout`` (message: its last log lines); it is
            stopped and its record removed.
    """
    log_file = state_dir / program.log_file
    child = start_process(
        command,
        log_path=log_file,
        env=env,
        cwd=state_dir,
        detach=True,
        banner=(
            f"--- modelpipe: starting {program.label} for {request.model_name} from {request.model_uri}"
            f" on port {request.port}"
        ),
    )
    state = ServedState(
        child.pid,
        request.port,
        request.model_name,
        request.model_uri,
        request.args,
        str(log_file),
        time.time(),
        program.module,
    )
    write_text_atomic(state_dir / program.state_file, json.dumps(asdict(state), indent=2))
    logger.info(
        "started local %s pid %d on port %d (log %s)", program.label, child.pid, request.port, log_file
    )
    started = time.monotonic()
    outcome = wait_ready(
        lambda: program.ready(state.endpoint_url, request.model_name),
        lambda: alive(child.pid),
        timeout=timeout,
        poll_seconds=poll_seconds,
    )
    if outcome != "ready":
        stop_served(state_dir, program)
        what = (
            "exited before it was ready"
            if outcome == "exited"
            else f"not ready after {timeout:.0f} s (stopped)"
        )
        fix = f"read {log_file}; {check}" if outcome == "exited" else f"read {log_file}, or raise --timeout"
        raise DeployError(
            _failure(
                f"local {program.label} for {request.model_name} {what}", program, child.log_offset, log_file
            ),
            fix=fix,
        )
    logger.info("local %s %d ready in %.1f s", program.label, child.pid, time.monotonic() - started)
    return LocalRuntime(child.pid, state.endpoint_url, request.model_name, log_file, started=True)


def _failure(what: str, program: ServedProgram, offset: int, log_file: Path) -> str:
    """``what`` plus this start's last log lines: all of them to the log, the last few in the message."""
    tail = log_tail(log_file, offset=offset)
    if tail:
        logger.error("last lines of %s:\n%s", log_file, tail)
    last = " | ".join(line.strip() for line in tail.splitlines()[-3:] if line.strip())
    return f"{what}; {program.label} log: {last}" if last else f"{what}; the {program.label} wrote no log"
