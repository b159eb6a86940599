"""The stand-ins of a local session: SeaweedFS and the registry server under one state folder."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from modelpipe.errors import LocalRunError
from modelpipe.files import write_text_atomic
from modelpipe.redaction import register_secret

log = logging.getLogger(__name__)

BUCKET = "modelpipe"
SERVICE_PIDS_FILE = "services.json"


def s3_credentials(state_dir: Path) -> tuple[str, str]:
    """The local S3 key pair, made once and kept (0600) so the data folder stays usable."""
    path = state_dir / "s3-credentials.json"
    if path.is_file():
        data = _read_state_file(path, required=("access_key_id", "secret_access_key"))
    else:
        data = {
            "access_key_id": f"local-{secrets.token_hex(4)}",
            "secret_access_key": secrets.token_urlsafe(24),
        }
        write_text_atomic(path, json.dumps(data), mode=0o600)
    register_secret(data["secret_access_key"])
    return data["access_key_id"], data["secret_access_key"]


def _read_state_file(path: Path, *, required: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object this session wrote earlier, with ``required`` keys; a clear error if it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LocalRunError(f"{path} is unreadable ({err})", fix=f"delete {path} and re-run") from err
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise LocalRunError(
            f"{path} is not a state file of this tool (needs {', '.join(required)})",
            fix=f"delete {path} and re-run",
        )
    return data


@dataclass(frozen=True)
class Services:
    """The running stand-ins of one session."""

    s3_env: dict[str, str]
    registry_url: str
    pids: list[int]

    @property
    def describe(self) -> dict[str, str]:
        """Where the services listen, for the summary of a kept session."""
        return {"s3_endpoint": self.s3_env["AWS_S3_ENDPOINT"], "registry_url": self.registry_url}


def stop_command(state_dir: Path, pids: list[int]) -> str:
    return (
        f"kill {' '.join(map(str, pids))}; "
        f"modelpipe deploy --target local --stop --state-dir {state_dir / 'runtime'}"
    )


def check_no_leftover(state_dir: Path) -> None:
    path = state_dir / SERVICE_PIDS_FILE
    if not path.is_file():
        return
    pids = _read_state_file(path, required=("pids",))["pids"]
    if not isinstance(pids, list) or not all(isinstance(pid, int) for pid in pids):
        raise LocalRunError(f"{path}: pids must be a list of integers", fix=f"delete {path} and re-run")
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    if alive:
        raise LocalRunError(
            f"services of an earlier --keep-running session still use {state_dir} (pids {alive})",
            fix=f"stop them: {stop_command(state_dir, alive)}",
        )
    path.unlink()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so a killed session still stops its steps and services."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def running_services(
    state_dir: Path, *, s3_port: int | None, registry_port: int | None, keep_running: bool
) -> Iterator[Services]:
    """SeaweedFS and the registry server with state under ``state_dir``; stopped on exit unless kept.

    Raises:
        LocalRunError: A service does not start, or an earlier kept session still runs on this state.
    """
    from modelpipe.local.registry.process import RegistryServerProcess
    from modelpipe.local.s3 import S3Credentials, SeaweedS3

    state_dir.mkdir(parents=True, exist_ok=True)
    check_no_leftover(state_dir)
    key_id, secret = s3_credentials(state_dir)
    s3 = SeaweedS3(state_dir / "s3", S3Credentials(key_id, secret), bucket=BUCKET, port=s3_port)
    registry = RegistryServerProcess(
        state_dir / "registry.db", port=registry_port, log_path=state_dir / "registry.log"
    )
    kept = False
    try:
        s3.start()
        registry.start()
        log.info("registry server on %s, data in %s", registry.url, registry.db)
        services = Services(
            s3_env=s3.data_connection_env(),
            registry_url=registry.url,
            pids=[p for p in (registry.pid, s3.pid) if p],
        )
        yield services
        kept = keep_running
    finally:
        if kept:
            pids = services.pids
            write_text_atomic(state_dir / SERVICE_PIDS_FILE, json.dumps({"pids": pids}))
            log.info(
                "services keep running (pids %s); S3 %s, registry %s", pids, s3.endpoint_url, registry.url
            )
        else:
            stop_runtime(state_dir / "runtime")
            registry.stop()
            s3.stop()


def stop_runtime(runtime_dir: Path) -> None:
    """Stop whatever model server (diffusers runtime or vLLM) a deploy recorded in ``runtime_dir``."""
    from modelpipe.targets.local_served import stop_recorded

    if stop_recorded(runtime_dir):
        log.info("stopped the local model server recorded in %s", runtime_dir)
