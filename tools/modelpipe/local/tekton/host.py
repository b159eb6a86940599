"""The host side of a local step: its environment, local secret values, processes and log lines."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from modelpipe.errors import LocalRunError
from modelpipe.local.tekton.model import KeyRef
from modelpipe.redaction import SECRET_ENV_NAMES, redact, register_secret

KILL_GRACE_SECONDS = 5.0
# Writing a script while another thread forks lets that child inherit the open file, and exec then fails
# with ETXTBSY; writing scripts and spawning under one lock avoids it.
SPAWN_LOCK = threading.Lock()
# Host variables a step sees besides its own env (a pod sees only what its Task declares).
PASSTHROUGH_ENV = (
    "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM",
    "MODELPIPE_LOG_LEVEL", "MODELPIPE_DEBUG", "MODELPIPE_EVAL_BIN", "HF_HOME", "HF_HUB_OFFLINE",
    "XDG_CACHE_HOME",
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
        with SPAWN_LOCK, self._lock:
            procs = list(self._procs)
        for proc in procs:
            kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
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


def pump_output(
    proc: subprocess.Popen[bytes], prefix: str, log_file: IO[str], sink: LogSink, timeout: float | None
) -> bool:
    """Copy output to the log and the sink until the process ends; True if it was killed for the timeout.

    Reads with select and stops shortly after the process exits, so a daemon the step leaves behind
    (the local runtime) holding the pipe cannot hang the run.
    """
    if proc.stdout is None:
        raise ValueError("pump_output needs a process started with stdout=PIPE")
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
            kill_group(proc)
    if pending:
        emit(pending)
    proc.stdout.close()
    proc.wait()
    log_file.flush()
    return timed_out
