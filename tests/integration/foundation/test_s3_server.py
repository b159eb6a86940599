"""The embedded SeaweedFS S3: multipart round trip, credentials enforced, data kept across restarts."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from modelpipe.local.s3 import free_port_with_grpc

from tests.fixtures.s3 import S3Endpoint
from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration


def test_multipart_object_round_trips_with_matching_sha256(s3_server: S3Endpoint, tmp_path: Path) -> None:
    source = tmp_path / "blob.bin"
    source.write_bytes(os.urandom(12 * 1024 * 1024 + 123))
    client = s3_server.client()
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    client.upload_file(str(source), s3_server.bucket, "dir/blob.bin", Config=config)

    head = client.head_object(Bucket=s3_server.bucket, Key="dir/blob.bin")
    assert head["ETag"].strip('"').endswith("-3"), "expected a 3-part multipart upload"
    fetched = tmp_path / "fetched.bin"
    client.download_file(s3_server.bucket, "dir/blob.bin", str(fetched))
    assert hashlib.sha256(fetched.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_wrong_secret_key_is_refused(s3_server: S3Endpoint) -> None:
    intruder = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key_id,
        aws_secret_access_key="not-the-secret",
        region_name=s3_server.region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as excinfo:
        intruder.put_object(Bucket=s3_server.bucket, Key="x", Body=b"x")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_data_survives_a_restart(s3_server: S3Endpoint) -> None:
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="keep/me.txt", Body=b"still here")
    port = s3_server.server.port
    s3_server.stop()
    s3_server.start()
    assert s3_server.server.port == port
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key="keep/me.txt")["Body"].read()
    assert body == b"still here"


def test_cli_creates_bucket_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port_with_grpc()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "cli-access-key",
        "AWS_SECRET_ACCESS_KEY": "cli-secret-key-0123456789",
        "AWS_S3_BUCKET": "cli-bucket",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelpipe",
            "local",
            "s3",
            "--dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
        ],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()  # type: ignore[union-attr]
        assert first_line.strip() == f"S3_ENDPOINT: http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="cli-access-key",
            aws_secret_access_key="cli-secret-key-0123456789",
            region_name="us-east-1",
        )
        client.head_bucket(Bucket="cli-bucket")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    _, stderr = process.communicate()
    assert code == 0
    assert "cli-secret-key-0123456789" not in stderr
    time.sleep(0.5)
    # "--": the pattern starts with "-", which pgrep would otherwise take for its -s option and fail.
    weeds = subprocess.run(["pgrep", "-f", "--", f"-s3.port={port}"], capture_output=True, text=True)
    assert weeds.returncode == 1, f"weed kept running after SIGTERM (pgrep: {weeds.stdout}{weeds.stderr})"


def _s3_cli_exits(data_dir: Path, port: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `modelpipe local s3` expecting it to exit on its own (a refused configuration)."""
    command = [sys.executable, "-m", "modelpipe", "local", "s3", "--dir", str(data_dir), "--port", str(port)]
    return subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_names_missing_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = _s3_cli_exits(tmp_path, free_port_with_grpc(), env)
    assert result.returncode == 1
    assert "AWS_ACCESS_KEY_ID" in result.stderr and "AWS_SECRET_ACCESS_KEY" in result.stderr


def test_cli_refuses_a_port_without_room_for_grpc(tmp_path: Path) -> None:
    keys = {"AWS_ACCESS_KEY_ID": "k" * 8, "AWS_SECRET_ACCESS_KEY": "s" * 16, "AWS_S3_BUCKET": "b1"}
    env = {**os.environ, **keys}
    result = _s3_cli_exits(tmp_path, 60000, env)
    assert result.returncode == 1
    assert "S3 port 60000 is out of range" in result.stderr
