"""Start, watch and stop the servers we launch (S3, registry, runtime): one home for Popen, logs and ports."""

from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelpipe.redaction import redact

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
TAIL_LINES = 20

Readiness = Literal["ready", "exited", "timeout"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when a server could bind ``host:port`` now.

    SO_REUSEADDR as the servers we start set it (uvicorn, weed, the runtime), so a port whose last
    connections linger in TIME_WAIT counts as free, as it is for them.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def log_tail(path: Path, lines: int = TAIL_LINES, *, offset: int = 0) -> str:
    """The last ``lines`` lines of a log file from byte ``offset`` on, secrets masked ("" without a log)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return redact("\n".join(line.rstrip() for line in collections.deque(text.splitlines(), maxlen=lines)))


def alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie counts as gone; our own exited children are reaped)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid`` (to ``pid`` alone if the group is not ours)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def stop_group(pid: int, *, timeout: float, kill_timeout: float = 5.0) -> bool:
    """SIGTERM the group led by ``pid``, SIGKILL it after ``timeout`` s; True once it is gone.

    For detached children (own session) that outlive the process that started them, so only the pid
    is known. False means it survived SIGKILL for ``kill_timeout`` seconds.
    """
    signal_group(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout, 0.1):
        return True
    logger.warning("process %d ignored SIGTERM for %.0f s; killing it", pid, timeout)
    signal_group(pid, signal.SIGKILL)
    return _wait_gone(pid, kill_timeout, 0.05)


def _wait_gone(pid: int, timeout: float, poll_seconds: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_seconds)
    return True


@dataclass
class ChildProcess:
    """A server we started, its log file and where this start's output begins in it (logs are appended)."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        """Its exit code, or None while it runs."""
        return self.popen.poll()

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines this start wrote, secrets masked."""
        return log_tail(self.log_path, lines, offset=self.log_offset)

    def output(self) -> str:
        """Everything this start wrote (for matching a known failure such as a port race)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self.log_offset)
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def request_stop(self) -> None:
        """SIGTERM without waiting (safe inside a signal handler)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns once it has exited."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def wait_ready(
        self, ready: Callable[[], bool], *, timeout: float, poll_seconds: float = 0.1
    ) -> Readiness:
        """Poll ``ready`` until it holds, the process exits, or ``timeout`` seconds pass."""
        return wait_ready(
            ready, lambda: self.popen.poll() is None, timeout=timeout, poll_seconds=poll_seconds
        )


def wait_ready(
    ready: Callable[[], bool], running: Callable[[], bool], *, timeout: float, poll_seconds: float
) -> Readiness:
    """Poll ``ready`` until it holds ("ready"), ``running`` turns false ("exited") or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not running():
            return "exited"
        if time.monotonic() > deadline:
            return "timeout"
        time.sleep(poll_seconds)
    return "ready"


def start_process(
    command: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    detach: bool = False,
    banner: str | None = None,
) -> ChildProcess:
    """Start ``command`` with stdout and stderr appended to ``log_path`` and no stdin.

    Args:
        command: Argv (secrets go through ``env``, never here).
        log_path: Log file, appended to; the returned offset marks where this start begins.
        env: Child environment (default: ours).
        cwd: Working directory.
        detach: Own session and process group, so it outlives us and ``stop_group`` reaches its children.
        banner: A line written to the log before the child starts.
    """
    with log_path.open("ab") as log_file:
        if banner:
            log_file.write(f"{banner}\n".encode())
            log_file.flush()
        offset = log_file.tell()
        popen = subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )
    return ChildProcess(popen, log_path, offset)
