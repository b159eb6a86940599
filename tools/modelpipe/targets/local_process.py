"""Run the diffusers runtime as a detached local process (the local stand-in for a KServe predictor)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from modelpipe.config import (
    AWS_ACCESS_KEY_ID,
    AWS_DEFAULT_REGION,
    AWS_S3_BUCKET,
    AWS_S3_ENDPOINT,
    AWS_SECRET_ACCESS_KEY,
    S3Settings,
)
from modelpipe.errors import ConfigError, DeployError
from modelpipe.files import write_text_atomic
from modelpipe.processes import alive, log_tail, port_is_free, start_process, stop_group, wait_ready
from modelpipe.redaction import SECRET_ENV_NAMES

logger = logging.getLogger(__name__)

STATE_FILE = "runtime.json"
LOG_FILE = "runtime.log"
MODEL_DIR = "model"
HOST = "127.0.0.1"
RUNTIME_MODULE = "diffusers_runtime"
# Secrets the runtime never needs; the data-connection keys it does need are set explicitly.
_DROP_FROM_CHILD_ENV = tuple(
    name for name in SECRET_ENV_NAMES if name not in (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
)


@dataclass(frozen=True)
class RuntimeState:
    """What ``STATE_FILE`` records about a started runtime."""

    pid: int
    port: int
    model_name: str
    model_uri: str
    args: list[str]
    log_file: str
    started_at: float

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True)
class LocalRuntime:
    """A running local runtime.

    Attributes:
        pid: Process id (also its process group id; it runs in its own session).
        endpoint_url: ``http://127.0.0.1:PORT``.
        model_name: Served model name.
        log_file: Where its stdout/stderr go.
        started: False when an identical runtime was already running and was reused.
    """

    pid: int
    endpoint_url: str
    model_name: str
    log_file: Path
    started: bool


def runtime_env(model_uri: str, s3: S3Settings, base: Mapping[str, str]) -> dict[str, str]:
    """The child environment: ``base`` without unrelated secrets, plus STORAGE_URI and the data connection.

    KServe's storage code reads AWS_ENDPOINT_URL; the data connection names the endpoint AWS_S3_ENDPOINT;
    both are set.
    """
    env = {key: value for key, value in base.items() if key not in _DROP_FROM_CHILD_ENV}
    env["STORAGE_URI"] = model_uri
    env[AWS_DEFAULT_REGION] = s3.region
    if s3.endpoint_url:
        env[AWS_S3_ENDPOINT] = env["AWS_ENDPOINT_URL"] = s3.endpoint_url
    if s3.bucket:
        env[AWS_S3_BUCKET] = s3.bucket
    if s3.access_key_id is not None and s3.secret_access_key is not None:
        env[AWS_ACCESS_KEY_ID] = s3.access_key_id.get_secret_value()
        env[AWS_SECRET_ACCESS_KEY] = s3.secret_access_key.get_secret_value()
    return env


def runtime_command(
    model_name: str, port: int, extra_args: Sequence[str], python: str, download_dir: Path
) -> list[str]:
    """``python -m diffusers_runtime``: HTTP on ``port``, no gRPC (8081 would collide), model downloaded
    from STORAGE_URI into ``download_dir``."""
    return [
        python, "-m", RUNTIME_MODULE,
        "--model_name", model_name,
        "--http_port", str(port),
        "--enable_grpc", "false",
        "--download_dir", str(download_dir),
        *extra_args,
    ]  # fmt: skip


def _is_runtime(pid: int) -> bool:
    """Guard against a recycled pid: the process must be our runtime module."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return RUNTIME_MODULE.encode() in cmdline


def read_state(state_dir: Path) -> RuntimeState | None:
    """The recorded runtime in ``state_dir``, or None."""
    try:
        return RuntimeState(**json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as err:
        raise DeployError(
            f"{state_dir / STATE_FILE} is not a runtime state file ({err})", fix="delete it and re-run"
        ) from err


def _write_state(state_dir: Path, state: RuntimeState) -> None:
    write_text_atomic(state_dir / STATE_FILE, json.dumps(asdict(state), indent=2))


def model_ready(endpoint_url: str, model_name: str, timeout: float = 2.0) -> bool:
    """True when ``GET /v2/models/{name}/ready`` answers 200 (``/v2/health/ready`` is always true)."""
    try:
        with urllib.request.urlopen(
            f"{endpoint_url}/v2/models/{model_name}/ready", timeout=timeout
        ) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop_local_runtime(target: int | Path, *, timeout: float = 20.0) -> bool:
    """Stop a local runtime by pid or by the state dir it was started with. Returns False if none ran.

    Sends SIGTERM to its process group, then SIGKILL after ``timeout`` seconds; removes the state file.

    Raises:
        DeployError: The pid belongs to some other program, or the process survives SIGKILL.
    """
    state_dir = None
    if isinstance(target, Path):
        state_dir = target
        state = read_state(state_dir)
        if state is None:
            return False
        pid = state.pid
    else:
        pid = target
    running = alive(pid)
    if running and not _is_runtime(pid):
        if state_dir is not None:  # the recorded runtime is long gone and its pid was reused
            (state_dir / STATE_FILE).unlink(missing_ok=True)
            return False
        raise DeployError(f"process {pid} is not a {RUNTIME_MODULE} process; not stopping it")
    if running:
        if not stop_group(pid, timeout=timeout):
            raise DeployError(f"runtime process {pid} survived SIGKILL")
        logger.info("stopped local runtime %d", pid)
    if state_dir is not None:
        (state_dir / STATE_FILE).unlink(missing_ok=True)
    return running


def _reuse(
    state_dir: Path, model_name: str, model_uri: str, port: int, args: list[str]
) -> RuntimeState | None:
    """The already-running runtime if it serves exactly this; stop any other recorded one."""
    state = read_state(state_dir)
    if state is None:
        return None
    same = (state.model_name, state.model_uri, state.port, state.args) == (model_name, model_uri, port, args)
    if same and alive(state.pid) and _is_runtime(state.pid) and model_ready(state.endpoint_url, model_name):
        return state
    logger.info("replacing the local runtime recorded in %s (pid %d)", state_dir, state.pid)
    stop_local_runtime(state_dir)
    return None


def start_local_runtime(
    *,
    model_name: str,
    model_uri: str,
    s3: S3Settings,
    state_dir: Path,
    port: int = 8080,
    timeout: float = 600.0,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
    poll_seconds: float = 0.5,
) -> LocalRuntime:
    """Start the runtime detached (own session; it outlives this process), loading ``model_uri`` from S3.

    Idempotent: an identical runtime recorded in ``state_dir`` that still answers ready is reused.

    Raises:
        ConfigError: The port is taken or S3 credentials are missing.
        DeployError: The runtime exited or was not ready in ``timeout`` (message: its last log lines).
    """
    s3.require_credentials()
    state_dir.mkdir(parents=True, exist_ok=True)
    args = list(extra_args)
    reused = _reuse(state_dir, model_name, model_uri, port, args)
    if reused is not None:
        logger.info("local runtime %d already serves %s at %s", reused.pid, model_name, reused.endpoint_url)
        return LocalRuntime(reused.pid, reused.endpoint_url, model_name, Path(reused.log_file), started=False)
    if not port_is_free(port, HOST):
        raise ConfigError(
            f"port {port} on {HOST} is already in use", fix="pass another --port or stop that server"
        )
    log_file = state_dir / LOG_FILE
    download_dir = state_dir / MODEL_DIR
    # Only a cache of the S3 copy; cleared so a previous model's files never mix with this one.
    shutil.rmtree(download_dir, ignore_errors=True)
    download_dir.mkdir()
    command = runtime_command(model_name, port, args, python, download_dir)
    child = start_process(
        command,
        log_path=log_file,
        env=runtime_env(model_uri, s3, os.environ),
        cwd=state_dir,
        detach=True,
        banner=f"--- modelpipe: starting {model_name} from {model_uri} on port {port}",
    )
    state = RuntimeState(child.pid, port, model_name, model_uri, args, str(log_file), time.time())
    _write_state(state_dir, state)
    logger.info("started local runtime pid %d on port %d (log %s)", child.pid, port, log_file)
    _wait_ready(
        state, (log_file, child.log_offset), timeout=timeout, poll_seconds=poll_seconds, state_dir=state_dir
    )
    return LocalRuntime(child.pid, state.endpoint_url, model_name, log_file, started=True)


def _failure(what: str, log: tuple[Path, int]) -> str:
    """``what`` plus this start's last log lines: all of them to the log, the last few in the message."""
    log_file, offset = log
    tail = log_tail(log_file, offset=offset)
    if tail:
        logger.error("last lines of %s:\n%s", log_file, tail)
    last = " | ".join(line.strip() for line in tail.splitlines()[-3:] if line.strip())
    return f"{what}; runtime log: {last}" if last else f"{what}; the runtime wrote no log"


def _wait_ready(
    state: RuntimeState, log: tuple[Path, int], *, timeout: float, poll_seconds: float, state_dir: Path
) -> None:
    started = time.monotonic()
    outcome = wait_ready(
        lambda: model_ready(state.endpoint_url, state.model_name),
        lambda: alive(state.pid),
        timeout=timeout,
        poll_seconds=poll_seconds,
    )
    if outcome == "exited":
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        raise DeployError(
            _failure(f"local runtime for {state.model_name} exited before it was ready", log),
            fix=f"read {log[0]}; check the model URI and the S3 data connection",
        )
    if outcome == "timeout":
        stop_local_runtime(state_dir)
        raise DeployError(
            _failure(f"local runtime for {state.model_name} not ready after {timeout:.0f} s (stopped)", log),
            fix=f"read {log[0]}, or raise --timeout",
        )
    logger.info("local runtime %d ready in %.1f s", state.pid, time.monotonic() - started)
