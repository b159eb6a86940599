"""upload-model against a real SeaweedFS: resumable, verified, manifest last, clear credential errors."""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from modelpipe import uploads
from modelpipe.cli import main
from modelpipe.config import S3Settings
from modelpipe.errors import ChecksumMismatchError, StorageError
from modelpipe.manifest import (
    MANIFEST_NAME,
    build_manifest,
    hash_files,
    read_manifest,
    sha256_bytes,
    verify_files,
    write_manifest,
)
from modelpipe.s3 import (
    MIB,
    S3Client,
    S3Location,
    download_prefix,
    head_object,
    list_objects,
    make_s3_client,
    transfer_config,
    upload_bytes,
)
from modelpipe.steps.upload import upload_model
from modelpipe.uploads import UploadConfig, upload_file

pytestmark = pytest.mark.integration

BIG = "unet/diffusion_pytorch_model.safetensors"
# 5 MiB is the smallest S3 part; with files above one part sent as multipart (what a slow link gets), the
# 12 MiB file goes up as a 3-part multipart upload.
CONFIG = UploadConfig(max_concurrency=4, part_size=5 * MIB, single_request_max=5 * MIB)
DOWNLOAD = transfer_config(max_concurrency=4, chunksize=5 * MIB)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    files = {
        "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}',
        "unet/config.json": b'{"sample_size": 8}',
        BIG: os.urandom(12 * MIB),
        "text_encoder/model.safetensors": os.urandom(300_000),
        "scheduler/scheduler_config.json": b"{}",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    write_manifest(
        root,
        build_manifest(source="file:///fixture", revision="r1", files=hash_files(root, list(files))),
    )
    return root


@pytest.fixture
def client(s3_server: Any) -> S3Client:
    return make_s3_client(S3Settings.from_env(s3_server.env))


@pytest.fixture
def dest(s3_server: Any) -> S3Location:
    return S3Location(s3_server.bucket, "tiny/r1")


def _total(model_dir: Path) -> int:
    return read_manifest(model_dir).total_size + (model_dir / MANIFEST_NAME).stat().st_size


def test_first_upload_sends_every_byte_and_records_sha256(
    model_dir: Path, client: S3Client, dest: S3Location
) -> None:
    result = upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    assert (result.bytes_sent, result.bytes_skipped) == (_total(model_dir), 0)
    assert result.model_uri == f"s3://{dest.bucket}/tiny/r1"
    manifest = read_manifest(model_dir)
    assert set(list_objects(client, dest)) == {f.path for f in manifest.files} | {MANIFEST_NAME}
    for item in manifest.files:
        info = head_object(client, dest.child(item.path))
        assert info is not None and (info.size, info.sha256) == (item.size, item.sha256)


def test_rerun_uploads_zero_bytes(model_dir: Path, client: S3Client, dest: S3Location) -> None:
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    again = upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    assert (again.bytes_sent, again.files_sent) == (0, 0)
    assert again.bytes_skipped == _total(model_dir)


def _count_calls(client: S3Client) -> collections.Counter[str]:
    calls: collections.Counter[str] = collections.Counter()
    client.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
    return calls


SURVEY = {
    "HeadBucket": 1,
    "ListObjectsV2": 1,
    "ListMultipartUploads": 1,
    "HeadObject": 1,
}


def test_rerun_is_one_wave_of_four_requests_whatever_the_file_count(
    tmp_path: Path, client: S3Client, dest: S3Location
) -> None:
    """The manifest's receipt vouches for every file: no HEAD per file, one round trip in all."""
    root = tmp_path / "many"
    names = [f"shard-{index:02d}.json" for index in range(30)]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    write_manifest(
        root,
        build_manifest(source="file:///many", revision="r1", files=hash_files(root, names)),
    )
    upload_model(src=root, dest=dest, client=client, config=CONFIG)
    calls = _count_calls(client)
    one_wave = threading.Barrier(4, timeout=10)

    def hold(
        **_: Any,
    ) -> None:  # a handler's return value would stand in for the response
        one_wave.wait()

    client.meta.events.register("before-call.s3", hold)
    assert upload_model(src=root, dest=dest, client=client, config=CONFIG).bytes_sent == 0
    assert not one_wave.broken
    assert calls == SURVEY  # no body read or written, nothing re-verified


def test_first_upload_sends_no_head_for_files_the_listing_does_not_have(
    model_dir: Path, client: S3Client, dest: S3Location
) -> None:
    calls = _count_calls(client)
    before_first_put: list[collections.Counter[str]] = []

    def snapshot(model: Any, **_: Any) -> None:
        if model.name in {"PutObject", "CreateMultipartUpload"} and not before_first_put:
            before_first_put.append(collections.Counter(calls))

    client.meta.events.register("before-call.s3", snapshot)
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    assert before_first_put[0]["HeadObject"] == 1  # the manifest's, which is not there either


def test_file_rewritten_by_another_writer_is_found_and_sent_again(
    model_dir: Path, client: S3Client, dest: S3Location
) -> None:
    """Same size, other bytes, written by another tool: its ETag changed, so the receipt no longer holds."""
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    where = dest.child("unet/config.json")
    original = (model_dir / "unet/config.json").read_bytes()
    client.put_object(Bucket=where.bucket, Key=where.key, Body=original.replace(b"8", b"9"))
    again = upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    assert again.files_sent == 2  # the file and the manifest with its new receipt
    assert client.get_object(Bucket=where.bucket, Key=where.key)["Body"].read() == original
    calls = _count_calls(client)
    assert upload_model(src=model_dir, dest=dest, client=client, config=CONFIG).bytes_sent == 0
    assert calls == SURVEY


def test_manifest_without_a_receipt_is_checked_file_by_file_then_given_one(
    model_dir: Path, client: S3Client, dest: S3Location
) -> None:
    """A prefix uploaded before receipts existed: HEADs decide, nothing is re-sent but the manifest."""
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    manifest_bytes = (model_dir / MANIFEST_NAME).read_bytes()
    upload_bytes(
        client,
        manifest_bytes,
        dest.child(MANIFEST_NAME),
        content_type="application/json",
    )
    calls = _count_calls(client)
    again = upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    assert again.bytes_sent == len(manifest_bytes)
    assert calls["HeadObject"] == 1 + len(read_manifest(model_dir).files)
    calls.clear()
    assert upload_model(src=model_dir, dest=dest, client=client, config=CONFIG).bytes_sent == 0
    assert calls == SURVEY


def test_missing_bucket_is_named_before_anything_is_sent(model_dir: Path, client: S3Client) -> None:
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        upload_model(
            src=model_dir,
            dest=S3Location("no-such-bucket", "m"),
            client=client,
            config=CONFIG,
        )


def test_multipart_object_content_sha256_matches_manifest(
    model_dir: Path, client: S3Client, dest: S3Location
) -> None:
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    info = head_object(client, dest.child(BIG))
    assert info is not None and info.etag.endswith("-3"), "expected a 3-part multipart upload"
    body = client.get_object(Bucket=dest.bucket, Key=dest.child(BIG).key)["Body"].read()
    assert sha256_bytes(body) == read_manifest(model_dir).file(BIG).sha256 == info.sha256


def _fail_part_two(params: dict[str, Any], **_: Any) -> None:
    if params.get("PartNumber") == 2:
        raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, "UploadPart")


def test_interrupted_upload_rerun_sends_only_the_missing_parts(
    model_dir: Path, client: S3Client, dest: S3Location, s3_server: Any
) -> None:
    flaky = make_s3_client(S3Settings.from_env(s3_server.env))
    flaky.meta.events.register("before-parameter-build.s3.UploadPart", _fail_part_two)
    with pytest.raises(StorageError, match=rf"uploading s3://.*/{BIG}.*InternalError"):
        upload_model(src=model_dir, dest=dest, client=flaky, config=CONFIG)
    present = list_objects(client, dest)
    assert MANIFEST_NAME not in present and BIG not in present
    assert present, "the small files should have completed"
    assert _missing(model_dir, present) == [BIG]

    result = upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    # Parts 1 and 3 of the big file finished before the failure and are reused; only part 2 goes again.
    manifest_size = (model_dir / MANIFEST_NAME).stat().st_size
    assert result.bytes_sent == 5 * MIB + manifest_size
    assert result.bytes_sent + result.bytes_skipped == _total(model_dir)
    assert MANIFEST_NAME in list_objects(client, dest)
    assert client.list_multipart_uploads(Bucket=dest.bucket).get("Uploads", []) == []


def _missing(model_dir: Path, present: dict[str, int]) -> list[str]:
    return [f.path for f in read_manifest(model_dir).files if f.path not in present]


def test_changed_model_drops_old_manifest_before_sending(
    model_dir: Path, client: S3Client, dest: S3Location, s3_server: Any
) -> None:
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    (model_dir / BIG).write_bytes(os.urandom(12 * MIB))
    write_manifest(
        model_dir,
        build_manifest(
            source="file:///fixture",
            revision="r2",
            files=hash_files(model_dir, [f.path for f in read_manifest(model_dir).files]),
        ),
    )
    flaky = make_s3_client(S3Settings.from_env(s3_server.env))
    flaky.meta.events.register("before-parameter-build.s3.UploadPart", _fail_part_two)
    with pytest.raises(StorageError):
        upload_model(src=model_dir, dest=dest, client=flaky, config=CONFIG)
    assert MANIFEST_NAME not in list_objects(client, dest), "a half-updated prefix must not keep a manifest"


def _drop_metadata(params: dict[str, Any], **_: Any) -> None:
    params.pop("Metadata", None)


def test_store_that_drops_sha256_metadata_fails_after_upload_without_a_manifest(
    model_dir: Path, client: S3Client, dest: S3Location, s3_server: Any
) -> None:
    forgetful = make_s3_client(S3Settings.from_env(s3_server.env))
    for operation in ("PutObject", "CreateMultipartUpload"):
        forgetful.meta.events.register(f"before-parameter-build.s3.{operation}", _drop_metadata)
    with pytest.raises(StorageError, match=r"after upload, 5 objects .* differ from the manifest"):
        upload_model(src=model_dir, dest=dest, client=forgetful, config=CONFIG)
    assert MANIFEST_NAME not in list_objects(client, dest)


def _no_unfinished_uploads(client: S3Client, dest: S3Location) -> bool:
    return client.list_multipart_uploads(Bucket=dest.bucket).get("Uploads", []) == []


@pytest.mark.parametrize(
    "corrupted",
    ["text_encoder/model.safetensors", BIG],
    ids=["single-request-checked-by-the-store", "multipart-hashed-as-read"],
)
def test_corrupted_file_is_refused_by_name_and_nothing_of_it_stays(
    model_dir: Path, client: S3Client, dest: S3Location, corrupted: str
) -> None:
    with (model_dir / corrupted).open("r+b") as handle:
        handle.seek(6 * MIB if corrupted == BIG else 0)  # in the second part of the big file
        handle.write(b"\x00\x00\x00\x00")
    with pytest.raises(ChecksumMismatchError, match=re.escape(corrupted)):
        upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    present = list_objects(client, dest)
    assert corrupted not in present and MANIFEST_NAME not in present
    assert _no_unfinished_uploads(client, dest), "a corrupted file's multipart upload must be aborted"


def _strip_checksum(params: dict[str, Any], **_: Any) -> None:
    params.pop("ChecksumSHA256", None)


def test_store_that_ignores_checksums_gets_files_hashed_here(
    model_dir: Path, s3_server: Any, client: S3Client, dest: S3Location
) -> None:
    """A store that does not echo x-amz-checksum-sha256 did not check it: the client hashes instead."""
    unchecked = make_s3_client(S3Settings.from_env(s3_server.env))
    unchecked.meta.events.register("before-parameter-build.s3.PutObject", _strip_checksum)
    with (model_dir / "text_encoder/model.safetensors").open("r+b") as handle:
        handle.write(b"\x00\x00\x00\x00")
    with pytest.raises(ChecksumMismatchError, match=r"text_encoder/model\.safetensors"):
        upload_model(src=model_dir, dest=dest, client=unchecked, config=CONFIG)
    assert "text_encoder/model.safetensors" not in list_objects(client, dest)


def test_every_request_with_a_body_carries_a_checksum_the_store_verifies(
    model_dir: Path, client: S3Client, dest: S3Location
) -> None:
    """Payload signing is off, so each object or part sent must carry a checksum the store verifies."""
    unchecked: list[str] = []

    def inspect(request: Any, **_: Any) -> None:
        headers = {name.lower() for name in request.headers}
        if request.method == "PUT" and not headers & {
            "x-amz-checksum-sha256",
            "x-amz-checksum-crc32",
            "content-md5",
        }:
            unchecked.append(f"{request.method} {request.url}")

    client.meta.events.register("before-send.s3", inspect)
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    upload_model(src=model_dir, dest=S3Location(dest.bucket, "fast"), client=client)
    assert unchecked == []


def test_fast_link_sends_each_file_in_one_request(
    model_dir: Path, client: S3Client, dest: S3Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loopback is a fast link; the threshold is raised so a loaded test host cannot make it look slow.
    monkeypatch.setattr(uploads, "FAST_LINK_RTT_SECONDS", 1.0)
    operations: collections.Counter[str] = collections.Counter()
    client.meta.events.register("before-call.s3", lambda model, **_: operations.update([model.name]))
    upload_model(src=model_dir, dest=dest, client=client)
    assert operations["PutObject"] == len(read_manifest(model_dir).files) + 1
    assert operations["UploadPart"] == 0
    info = head_object(client, dest.child(BIG))
    assert info is not None and "-" not in info.etag


def test_slow_link_sends_large_files_as_parallel_parts(
    model_dir: Path, client: S3Client, dest: S3Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "FAST_LINK_RTT_SECONDS", 0.0)  # every link is slow now
    upload_model(
        src=model_dir,
        dest=dest,
        client=client,
        config=UploadConfig(max_concurrency=4, part_size=5 * MIB),
    )
    info = head_object(client, dest.child(BIG))
    assert info is not None and info.etag.endswith("-3")


def test_slow_link_starts_every_stream_at_once(
    model_dir: Path, client: S3Client, dest: S3Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streams added mid-transfer start cold beside warm ones: a slow link gets all of them from the start."""
    monkeypatch.setattr(uploads, "FAST_LINK_RTT_SECONDS", 0.0)
    # Each of the 3 parts waits until all 3 are in flight; one held back breaks the barrier.
    all_in_flight = threading.Barrier(3, timeout=10)

    def hold(model: Any, **_: Any) -> None:
        if model.name == "UploadPart":
            all_in_flight.wait()

    client.meta.events.register("before-call.s3", hold)
    upload_model(
        src=model_dir,
        dest=dest,
        client=client,
        config=UploadConfig(max_concurrency=3, part_size=5 * MIB),
    )
    assert not all_in_flight.broken
    assert upload_model(src=model_dir, dest=dest, client=client, config=CONFIG).bytes_sent == 0


def test_multipart_upload_starts_while_the_first_small_file_goes(
    model_dir: Path, client: S3Client, dest: S3Location
) -> None:
    """The round trips that create a multipart upload overlap the first request instead of following it."""
    created = threading.Event()
    overlapped: list[bool] = []

    def watch(model: Any, **_: Any) -> None:
        if model.name == "CreateMultipartUpload":
            created.set()
        elif model.name == "PutObject" and not overlapped:
            overlapped.append(created.wait(timeout=5))

    client.meta.events.register("before-call.s3", watch)
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    assert overlapped == [True]


def test_bodies_up_to_a_part_go_without_waiting_for_100_continue(
    model_dir: Path, client: S3Client, dest: S3Location
) -> None:
    """`Expect: 100-continue` costs a round trip before the first byte; parts and small files skip it."""
    waited: list[str] = []

    def inspect(request: Any, **_: Any) -> None:
        if request.method == "PUT" and "expect" in {name.lower() for name in request.headers}:
            waited.append(request.url)

    client.meta.events.register("before-send.s3", inspect)
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    assert waited == []


def test_cli_wrong_secret_key_exits_1_naming_the_variable_not_the_value(
    model_dir: Path,
    s3_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "wrong-secret-value-987654"
    for name, value in {**s3_server.env, "AWS_SECRET_ACCESS_KEY": wrong}.items():
        monkeypatch.setenv(name, value)
    code = main(
        [
            "upload",
            "--model-dir",
            str(model_dir),
            "--model-uri",
            f"s3://{s3_server.bucket}/tiny",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "AWS_SECRET_ACCESS_KEY" in lines[0]
    assert wrong not in out + err and s3_server.access_key_id not in out + err
    assert "Traceback" not in err


def test_cli_writes_results_and_prints_bytes(
    model_dir: Path,
    s3_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{s3_server.bucket}/tiny"
    argv = [
        "upload",
        "--model-dir",
        str(model_dir),
        "--model-uri",
        uri,
        "--results-dir",
    ]
    assert main([*argv, str(tmp_path / "r1")]) == 0
    assert main([*argv, str(tmp_path / "r2")]) == 0
    out = capsys.readouterr().out
    assert f"BYTES_SENT: {_total(model_dir)}" in out and "BYTES_SENT: 0" in out
    assert (tmp_path / "r2" / "MODEL_URI").read_text() == f"s3://{s3_server.bucket}/tiny"
    assert (tmp_path / "r2" / "BYTES_SENT").read_text() == "0"
    assert (tmp_path / "r2" / "BYTES_SKIPPED").read_text() == str(_total(model_dir))


def test_download_prefix_restores_the_model_and_keeps_current_files(
    model_dir: Path, client: S3Client, dest: S3Location, tmp_path: Path
) -> None:
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    restored = download_prefix(client, dest, tmp_path / "restored", config=DOWNLOAD)
    verify_files(restored, read_manifest(restored))
    stamp = (restored / BIG).stat().st_mtime_ns
    (restored / "unet/config.json").write_text('{"sample_size": 9}')
    download_prefix(client, dest, restored, config=DOWNLOAD)
    assert (restored / BIG).stat().st_mtime_ns == stamp, "a verified local copy must not be fetched again"
    assert (restored / "unet/config.json").read_text() == '{"sample_size": 8}'


def test_download_prefix_of_an_empty_prefix_is_a_clear_error(
    client: S3Client, dest: S3Location, tmp_path: Path
) -> None:
    with pytest.raises(StorageError, match="no objects under"):
        download_prefix(client, dest, tmp_path / "x")


def test_objects_outside_the_manifest_are_kept_and_named_in_a_warning(
    model_dir: Path,
    client: S3Client,
    dest: S3Location,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.put_object(Bucket=dest.bucket, Key=dest.child("unet/old.bin").key, Body=b"old")
    with caplog.at_level(logging.WARNING, logger="modelpipe"):
        upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    assert "unet/old.bin" in caplog.text
    assert "unet/old.bin" in list_objects(client, dest)


def test_rerun_after_an_object_was_deleted_restores_it_and_the_manifest(
    model_dir: Path, client: S3Client, dest: S3Location
) -> None:
    upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    client.delete_object(Bucket=dest.bucket, Key=dest.child("unet/config.json").key)
    result = upload_model(src=model_dir, dest=dest, client=client, config=CONFIG)
    manifest_size = (model_dir / MANIFEST_NAME).stat().st_size
    assert result.bytes_sent == read_manifest(model_dir).file("unet/config.json").size + manifest_size
    assert {"unet/config.json", MANIFEST_NAME} <= set(list_objects(client, dest))


def test_upload_file_stores_sha256_and_content_type(
    client: S3Client, dest: S3Location, tmp_path: Path
) -> None:
    page = tmp_path / "report.png"
    page.write_bytes(os.urandom(1000))
    upload_file(client, page, dest.child("reports/report.png"), content_type="image/png")
    response = client.head_object(Bucket=dest.bucket, Key=dest.child("reports/report.png").key)
    assert response["ContentType"] == "image/png"
    assert response["Metadata"]["sha256"] == sha256_bytes(page.read_bytes())


def test_round_trip_is_measured_on_the_bucket_and_none_when_unreachable(
    client: S3Client, s3_server: Any
) -> None:
    calls: collections.Counter[str] = collections.Counter()
    client.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
    rtt = uploads.measure_round_trip(client, s3_server.bucket)
    assert rtt is not None and 0 < rtt < 1.0 and calls == {"HeadBucket": 2}
    unreachable = make_s3_client(
        S3Settings.from_env({**s3_server.env, "AWS_S3_ENDPOINT": "http://127.0.0.1:9"})
    )
    assert uploads.measure_round_trip(unreachable, s3_server.bucket) is None


def _strip_crc32(params: dict[str, Any], **_: Any) -> None:
    params.pop("ChecksumCRC32", None)


def _refuse_crc32(params: dict[str, Any], **_: Any) -> None:
    if "ChecksumCRC32" in params:
        raise ClientError(
            {"Error": {"Code": "InvalidArgument", "Message": "unknown header"}},
            "UploadPart",
        )


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        # Ignored: part 1 is kept (its ETag is its MD5), later parts carry Content-MD5.
        (_strip_crc32, [(1, "crc32"), (2, "md5"), (3, "md5")]),
        # Refused: part 1 goes again with Content-MD5.
        (_refuse_crc32, [(1, "crc32"), (1, "md5"), (2, "md5"), (3, "md5")]),
    ],
    ids=["ignores-crc32", "refuses-crc32"],
)
def test_parts_fall_back_to_content_md5_where_crc32_is_not_checked(
    model_dir: Path,
    s3_server: Any,
    client: S3Client,
    dest: S3Location,
    store: Callable[..., None],
    expected: list[tuple[int, str]],
) -> None:
    odd = make_s3_client(S3Settings.from_env(s3_server.env))
    sent: list[tuple[int, str]] = []
    # Recorded before the store's handler strips the header; one stream, so parts go in order and
    # none is in flight while the first answer is awaited (with more, those go CRC32 too).
    odd.meta.events.register(
        "before-parameter-build.s3.UploadPart",
        lambda params, **_: sent.append(
            (params["PartNumber"], "crc32" if "ChecksumCRC32" in params else "md5")
        ),
    )
    odd.meta.events.register("before-parameter-build.s3.UploadPart", store)
    upload_model(src=model_dir, dest=dest, client=odd, config=dataclasses.replace(CONFIG, max_concurrency=1))
    assert sent == expected
    body = client.get_object(Bucket=dest.bucket, Key=dest.child(BIG).key)["Body"].read()
    assert sha256_bytes(body) == read_manifest(model_dir).file(BIG).sha256
