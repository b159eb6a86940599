"""Free TCP ports on 127.0.0.1 for the local stand-ins."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


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
