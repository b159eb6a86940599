"""The local registry server as a child process: what the local session and the test fixtures start."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from modelpipe.config import MODEL_REGISTRY_TOKEN, MODEL_REGISTRY_URL
from modelpipe.errors import LocalRunError
from modelpipe.processes import ChildProcess, free_port, start_process

START_TIMEOUT_SECONDS = 60.0
_LOG_TAIL_LINES = 5


class RegistryServerProcess:
    """`modelpipe registry serve` as a child on 127.0.0.1; ``stop()`` then ``start()`` keeps port and DB.

    Args:
        db: SQLite file (created if missing).
        log_path: Where the server's output goes.
        port: TCP port; None picks a free one.
        api_versions: Prefixes to serve; None serves the server's default (v1 and v1alpha3).
        token: Bearer token the server requires (passed through the environment, never argv).
        python: Interpreter that has modelpipe installed.
    """

    def __init__(
        self,
        db: Path,
        *,
        log_path: Path,
        port: int | None = None,
        api_versions: Sequence[str] | None = None,
        token: str | None = None,
        python: str = sys.executable,
    ) -> None:
        self.db = db
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_versions = tuple(api_versions or ("v1", "v1alpha3"))
        self.token = token
        self.python = python
        self._process: ChildProcess | None = None

    def api(self, version: str | None = None) -> str:
        """Base URL of the API for ``version`` (default: the first served one)."""
        return f"{self.url}/api/model_registry/{version or self.api_versions[0]}"

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header the server expects (empty without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def env(self) -> dict[str, str]:
        """MODEL_REGISTRY_URL (and MODEL_REGISTRY_TOKEN) for steps that talk to this server."""
        env = {MODEL_REGISTRY_URL: self.url}
        if self.token:
            env[MODEL_REGISTRY_TOKEN] = self.token
        return env

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start the server and wait until its API answers.

        Raises:
            LocalRunError: It is already running, exits, or does not answer in time (log tail included).
        """
        if self._process is not None:
            raise LocalRunError(f"registry server on {self.url} is already running")
        env = {k: v for k, v in os.environ.items() if k != MODEL_REGISTRY_TOKEN}
        if self.token:
            env[MODEL_REGISTRY_TOKEN] = self.token
        command = [
            self.python, "-m", "modelpipe.cli.registry", "--host", "127.0.0.1", "--port", str(self.port),
            "--db", str(self.db), "--api-versions", ",".join(self.api_versions),
        ]  # fmt: skip
        process = start_process(command, log_path=self.log_path, env=env)
        self._process = process
        probe = urllib.request.Request(f"{self.api()}/registered_models?pageSize=1", headers=self.headers)
        outcome = process.wait_ready(lambda: _answers(probe), timeout=timeout)
        if outcome == "exited":
            self._process = None
            raise LocalRunError(
                f"registry server exited with code {process.exit_code()}: {_one_line(process)}"
            )
        if outcome == "timeout":
            self.stop()
            raise LocalRunError(
                f"registry server did not answer on {self.url} within {timeout:.0f}s: {_one_line(process)}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        process, self._process = self._process, None
        if process is not None:
            process.stop(timeout)


def _answers(probe: urllib.request.Request) -> bool:
    try:
        with urllib.request.urlopen(probe, timeout=2.0):
            return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _one_line(process: ChildProcess) -> str:
    """The last lines this start wrote (the log is appended across sessions), on one line."""
    lines = [line.strip() for line in process.tail(_LOG_TAIL_LINES).splitlines() if line.strip()]
    return " | ".join(lines) if lines else f"no output (log {process.log_path})"
