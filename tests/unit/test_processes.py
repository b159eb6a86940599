"""Port checks the stand-ins run before binding."""

from __future__ import annotations

import socket

from modelpipe.processes import free_port, port_is_free


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert port_is_free(server.getsockname()[1]) is False


def test_a_port_nothing_listens_on_is_free() -> None:
    assert port_is_free(free_port()) is True
