"""SeaweedS3 refuses a taken port before it starts anything."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from modelpipe.errors import LocalRunError
from modelpipe.local.s3 import GRPC_OFFSET, S3Credentials, SeaweedS3, free_port_with_grpc

CREDENTIALS = S3Credentials("key-id", "secret-value")


@pytest.mark.parametrize("offset", [0, GRPC_OFFSET], ids=["s3-port", "grpc-port"])
def test_taken_port_is_named_with_a_fix(tmp_path: Path, offset: int) -> None:
    port = free_port_with_grpc()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port + offset))
        busy.listen()
        with pytest.raises(LocalRunError) as caught:
            SeaweedS3(tmp_path / "s3", CREDENTIALS, bucket="b1", port=port).start()
    message = caught.value.one_line()
    assert f"port {port + offset} on 127.0.0.1 is in use" in message
    assert "fix: pick another port" in message
