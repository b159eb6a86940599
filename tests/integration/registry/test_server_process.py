"""The registry server process wrapper the local session and the fixtures start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from modelpipe.errors import LocalRunError
from modelpipe.local.registry.process import RegistryServerProcess

pytestmark = pytest.mark.integration


def test_taken_port_fails_naming_the_port_without_earlier_sessions_log(tmp_path: Path) -> None:
    log = tmp_path / "registry.log"
    log.write_text("line from an earlier session\n" * 50, encoding="utf-8")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = RegistryServerProcess(tmp_path / "registry.db", log_path=log, port=port)
        with pytest.raises(LocalRunError) as caught:
            server.start()
    message = caught.value.one_line()
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in message
    assert "earlier session" not in message
    assert "\n" not in message
