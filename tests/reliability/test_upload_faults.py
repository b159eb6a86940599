"""`modelpipe upload` killed mid-transfer, and S3 restarting mid-transfer, against a real SeaweedFS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from modelpipe.manifest import (
    MANIFEST_NAME,
    build_manifest,
    hash_files,
    read_manifest,
    write_manifest,
)
from modelpipe.s3 import MIB, S3Location, head_object

from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration

BIG = "unet/diffusion_pytorch_model.safetensors"
PART_MIB = 5  # the S3 minimum part size
PARTS = 16
KILLS = 6


@pytest.fixture
def big_model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "unet").mkdir(parents=True)
    (root / "model_index.json").write_bytes(b'{"_class_name": "StableDiffusionPipeline"}')
    (root / BIG).write_bytes(os.urandom(PARTS * PART_MIB * MIB - 12345))
    write_manifest(
        root,
        build_manifest(
            source="file:///fixture",
            revision="r1",
            files=hash_files(root, ["model_index.json", BIG]),
        ),
    )
    return root


def _upload(model_dir: Path, dest: str, env: dict[str, str], results: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "modelpipe", "upload", "--model-dir", str(model_dir), "--model-uri", dest,
        "--chunk-size-mb", str(PART_MIB), "--single-request-max-mb", str(PART_MIB), "--max-concurrency", "1",
        "--results-dir", str(results),
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _parts_done(client: Any, bucket: str) -> int:
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return sum(
        len(client.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []))
        for u in uploads
    )


def _kill_after_new_parts(process: subprocess.Popen[str], client: Any, bucket: str, before: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if _parts_done(client, bucket) > before:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()


def test_killed_uploads_are_resumed_and_leave_no_unfinished_multipart_upload(
    big_model: Path, s3_server: Any, tmp_path: Path
) -> None:
    client = s3_server.client()
    dest = f"s3://{s3_server.bucket}/tiny/r1"
    for kill in range(KILLS):
        before = _parts_done(client, s3_server.bucket)
        process = _upload(big_model, dest, s3_server.env, tmp_path / f"killed-{kill}")
        _kill_after_new_parts(process, client, s3_server.bucket, before)
    uploads = client.list_multipart_uploads(Bucket=s3_server.bucket).get("Uploads", [])
    assert len(uploads) <= 1, "each run resumes the previous upload instead of starting another"
    done_parts = _parts_done(client, s3_server.bucket)
    assert done_parts >= 1

    full = _upload(big_model, dest, s3_server.env, tmp_path / "full")
    _, stderr = full.communicate(timeout=300)
    assert full.returncode == 0, stderr[-2000:]
    assert client.list_multipart_uploads(Bucket=s3_server.bucket).get("Uploads", []) == []
    total = read_manifest(big_model).total_size + (big_model / MANIFEST_NAME).stat().st_size
    sent = int((tmp_path / "full" / "BYTES_SENT").read_text())
    assert sent <= total - done_parts * PART_MIB * MIB, "finished parts were sent again"
    info = head_object(client, S3Location(s3_server.bucket, f"tiny/r1/{BIG}"))
    assert info is not None and info.sha256 == read_manifest(big_model).file(BIG).sha256


def test_stale_unfinished_uploads_are_aborted_by_the_next_run(
    big_model: Path, s3_server: Any, tmp_path: Path
) -> None:
    client = s3_server.client()
    bucket = s3_server.bucket
    # A part of other content under the big file's key, and an upload of a file the model no longer has.
    stale = client.create_multipart_upload(Bucket=bucket, Key=f"tiny/r1/{BIG}")["UploadId"]
    client.upload_part(
        Bucket=bucket,
        Key=f"tiny/r1/{BIG}",
        UploadId=stale,
        PartNumber=1,
        Body=os.urandom(PART_MIB * MIB),
    )
    client.create_multipart_upload(Bucket=bucket, Key="tiny/r1/unet/old.bin")
    run = _upload(big_model, f"s3://{bucket}/tiny/r1", s3_server.env, tmp_path / "results")
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr[-2000:]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    info = head_object(client, S3Location(bucket, f"tiny/r1/{BIG}"))
    assert info is not None and info.sha256 == read_manifest(big_model).file(BIG).sha256


def test_upload_survives_a_short_s3_restart(big_model: Path, s3_server: Any, tmp_path: Path) -> None:
    client = s3_server.client()
    process = _upload(
        big_model,
        f"s3://{s3_server.bucket}/tiny/r1",
        s3_server.env,
        tmp_path / "results",
    )
    deadline = time.monotonic() + 120
    while _parts_done(client, s3_server.bucket) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    s3_server.stop()
    time.sleep(3)
    s3_server.start()
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    assert "retrying in" in stderr, "the restart should have interrupted the transfer"
    info = head_object(client, S3Location(s3_server.bucket, f"tiny/r1/{BIG}"))
    assert info is not None and info.sha256 == read_manifest(big_model).file(BIG).sha256
