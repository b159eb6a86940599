"""Run the registry app with uvicorn on a socket bound up front, so a taken port is one clear error."""

from __future__ import annotations

import logging
import socket
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn

from modelpipe.errors import LocalRunError
from modelpipe.local.registry.app import API_VERSIONS, create_app
from modelpipe.local.registry.store import RegistryStore

log = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port.

    Raises:
        LocalRunError: The address is taken or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise LocalRunError(
            f"cannot listen on {host}:{port}: {err.strerror}", fix="pick a free --port or stop what uses it"
        ) from err
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve_registry(
    *,
    host: str,
    port: int,
    db: Path,
    token: str | None = None,
    api_versions: Sequence[str] = API_VERSIONS,
    log_level: str = "info",
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve the Model Registry REST API (and the overview page at ``/``) until SIGINT/SIGTERM.

    Args:
        host: Address to bind (127.0.0.1 by default in the CLI).
        port: TCP port.
        db: SQLite file; created when missing, reused across restarts.
        token: Require ``Authorization: Bearer <token>`` on every request when set.
        api_versions: Prefixes to serve, from ``v1`` and ``v1alpha3``.
        log_level: uvicorn log level.
        on_listening: Called with the base URL once the socket listens (requests then queue until served).

    Raises:
        LocalRunError: The port is taken or the database cannot be opened.
    """
    unknown = sorted(set(api_versions) - set(API_VERSIONS))
    if unknown or not api_versions:
        raise LocalRunError(
            f"unsupported API version(s): {', '.join(unknown) or 'none given'}",
            fix=f"choose from {', '.join(API_VERSIONS)}",
        )
    try:
        store = RegistryStore(db)
    except (sqlite3.Error, OSError, RuntimeError) as err:
        raise LocalRunError(
            f"cannot open registry database {db}: {err}", fix="check the path and its permissions"
        ) from err
    app = create_app(store, token=token, api_versions=api_versions)
    sock = bind_socket(host, port)
    port = sock.getsockname()[1]  # the one the kernel picked for --port 0
    if on_listening is not None:
        try:
            on_listening(f"http://{host}:{port}")
        except BaseException:
            sock.close()
            raise
    log.info("model registry on http://%s:%d (API %s, db %s)", host, port, ",".join(api_versions), db)
    config = uvicorn.Config(app, log_level=log_level, lifespan="off", access_log=log_level == "debug")
    uvicorn.Server(config).run(sockets=[sock])
