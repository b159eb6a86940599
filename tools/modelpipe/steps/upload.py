"""upload-model: copy a verified model folder to S3, skipping what is already there, manifest last."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from modelpipe.errors import StorageError
from modelpipe.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestFile,
    read_manifest,
    sha256_bytes,
    verify_files,
)
from modelpipe.multipart import abort_upload, unfinished_uploads
from modelpipe.progress import Progress
from modelpipe.s3 import (
    ListedObject,
    ObjectInfo,
    S3Client,
    S3Location,
    check_bucket,
    delete_object,
    head_object,
    list_objects_with_etags,
    storage_errors,
    upload_bytes,
)
from modelpipe.uploads import UploadConfig, UploadItem, upload_files

log = logging.getLogger(__name__)
# User metadata of the manifest object holding :func:`objects_receipt`.
RECEIPT_METADATA_KEY = "objects-sha256"
T = TypeVar("T")


@dataclass(frozen=True)
class UploadResult:
    """What upload-model did.

    Attributes:
        model_uri: ``s3://BUCKET/PREFIX`` holding the model and its manifest.json.
        bytes_sent: Bytes uploaded in this run (including manifest.json when it was sent).
        bytes_skipped: Bytes already present with the same size and sha256.
        files_sent: Number of objects uploaded.
        files_skipped: Number of objects left as they were.
        seconds: Wall time of the whole step.
    """

    model_uri: str
    bytes_sent: int
    bytes_skipped: int
    files_sent: int
    files_skipped: int
    seconds: float


def upload_model(
    *,
    src: Path,
    dest: S3Location,
    client: S3Client,
    config: UploadConfig | None = None,
) -> UploadResult:
    """Upload a downloaded model folder (with manifest.json) to ``dest``.

    Order matters: every local file is checked for existence and size; objects already present with the
    manifest's size and sha256 metadata are skipped; a stale manifest.json at ``dest`` is removed before
    anything changes; the rest go up as :func:`modelpipe.uploads.upload_files` chooses for the link, each
    object completed only if its bytes have the manifest's sha256 (checked by the store, or hashed here
    as it is read: a corrupted file is refused by name and nothing of it stays); every object sent is
    checked with HEAD; manifest.json goes last, so a prefix with a manifest is always complete.

    The manifest object carries a receipt (:func:`objects_receipt`): each file's path, size, sha256 and
    the ETag it had when verified. Any later write to a file changes its ETag, so a listing whose ETags
    give the same receipt proves every file is still the verified one: a no-change re-run is one wave of
    four requests (bucket, listing, unfinished uploads, the manifest's HEAD) whatever the file count.
    Otherwise each listed file of the right size is checked with HEAD.

    Args:
        src: Model folder containing manifest.json.
        dest: Target prefix.
        client: From :func:`modelpipe.s3.make_s3_client`.
        config: Concurrency bound, part size, single-request limit (:class:`modelpipe.uploads.UploadConfig`).

    Raises:
        ManifestError: manifest.json is missing or invalid.
        ChecksumMismatchError: A local file does not match the manifest (named).
        StorageAuthError: S3 refused the credentials.
        StorageError: The bucket is missing, a transfer failed, or an object differs after upload.
    """
    started = time.monotonic()
    manifest = read_manifest(src / MANIFEST_NAME)
    verify_files(src, manifest, hash_only=())
    manifest_bytes = (src / MANIFEST_NAME).read_bytes()
    survey = _survey(client, dest, manifest)
    remote_manifest = survey.manifest
    missing = [item for item in manifest.files if item.path not in survey.present]
    # Unfinished multipart uploads of files about to be sent are resumed by the transfer; the others
    # (files complete since, or no longer in the model) would stay in the store forever.
    _abort_unfinished(client, dest, survey.unfinished, keep={item.path for item in missing})
    # The remote manifest stays only if its receipt vouches for every file and it lists this model.
    keep_manifest = (
        survey.vouched
        and remote_manifest is not None
        and (
            _same(remote_manifest, len(manifest_bytes), sha256_bytes(manifest_bytes))
            or _same_listing(client, dest, remote_manifest, manifest)
        )
    )
    skipped_bytes = sum(item.size for item in manifest.files) - sum(item.size for item in missing)
    log.info(
        "upload %s -> %s: %d of %d files to send (%d bytes), %d bytes already there",
        src,
        dest.uri,
        len(missing),
        len(manifest.files),
        sum(item.size for item in missing),
        skipped_bytes,
    )

    _warn_about_strays(survey.listed, dest, manifest)
    if not keep_manifest and remote_manifest is not None:
        # The old manifest would vouch for a prefix that is about to change: drop it first.
        delete_object(client, dest.child(MANIFEST_NAME))
    reused = _send(client, src, dest, missing, config, survey.round_trip)
    # The objects not sent were matched against the manifest by the survey moments ago.
    etags = {**survey.present, **_verify_remote(client, dest, missing)}

    sent = sum(item.size for item in missing) - reused
    skipped_bytes += reused
    if keep_manifest:
        skipped_bytes += len(manifest_bytes)
    else:
        receipt = objects_receipt(manifest, etags)  # every file was just verified: it has its ETag
        upload_bytes(
            client,
            manifest_bytes,
            dest.child(MANIFEST_NAME),
            content_type="application/json",
            metadata={RECEIPT_METADATA_KEY: receipt} if receipt else None,
        )
        sent += len(manifest_bytes)
    files_sent = len(missing) + (0 if keep_manifest else 1)
    return UploadResult(
        model_uri=dest.uri,
        bytes_sent=sent,
        bytes_skipped=skipped_bytes,
        files_sent=files_sent,
        files_skipped=len(manifest.files) + 1 - files_sent,
        seconds=time.monotonic() - started,
    )


def _same(info: ObjectInfo | None, size: int, sha256: str) -> TypeGuard[ObjectInfo]:
    return info is not None and info.size == size and info.sha256 == sha256


def _same_listing(client: S3Client, dest: S3Location, info: ObjectInfo | None, manifest: Manifest) -> bool:
    """True when the remote manifest lists the same model and files, differing at most in ``created``.

    Every download writes a new ``created`` time, so comparing bytes alone would re-send the manifest on
    every no-change re-run.
    """
    if info is None:
        return False
    location = dest.child(MANIFEST_NAME)
    with storage_errors(client, action="reading", uri=location.uri):
        body = client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    try:
        remote = Manifest.model_validate_json(body)
    except ValueError:
        return False
    return remote.model_dump(exclude={"created"}) == manifest.model_dump(exclude={"created"})


def objects_receipt(manifest: Manifest, etags: Mapping[str, str]) -> str | None:
    """sha256 over each manifest file's path, size, sha256 and verified ETag (None if one has no ETag).

    Stored on the manifest object when every file has been verified; a write of other bytes to any file
    gives it another ETag, and another model version other sha256 values, so the same receipt from a
    later listing means every file is still the one verified.
    """
    if any(item.path not in etags for item in manifest.files):
        return None
    lines = sorted(f"{i.path}\t{i.size}\t{i.sha256}\t{etags[i.path]}\n" for i in manifest.files)
    return sha256_bytes("".join(lines).encode())


@dataclass(frozen=True)
class _Survey:
    """What is at the destination and the link's round trip as the survey's quickest request saw it.

    Attributes:
        present: Files in place with the manifest's size and sha256, and their ETags.
        vouched: The remote manifest's receipt matched the listing (every file is present).
        listed: Every object under the prefix.
        manifest: The manifest object's HEAD (None if there is none).
        unfinished: Unfinished multipart uploads under the prefix.
        round_trip: Seconds.
    """

    present: dict[str, str]
    vouched: bool
    listed: dict[str, ListedObject]
    manifest: ObjectInfo | None
    unfinished: list[dict[str, object]]
    round_trip: float


def _survey(client: S3Client, dest: S3Location, manifest: Manifest) -> _Survey:
    """Which files are in place: one wave of four requests, and a HEAD per candidate file only if the
    manifest's receipt does not vouch for them.

    The bucket check, the listing (sizes, ETags), the unfinished uploads and the manifest's HEAD are
    independent: sent together they cost one round trip. Errors surface in the order a sequential run
    would raise them. Each request is timed: the quickest is the link's round trip, which decides how
    files are sent. Without a matching receipt, the files listed with the manifest's size (the others
    are missing for sure: a first upload sends no HEAD) are checked with HEAD, all at once.
    """
    latencies: list[float] = []

    def timed(call: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        try:
            return call(*args)
        finally:
            latencies.append(time.monotonic() - started)

    with ThreadPoolExecutor(max_workers=4) as pool:
        bucket_checked = pool.submit(timed, check_bucket, client, dest.bucket)
        listing = pool.submit(timed, list_objects_with_etags, client, dest)
        uploads = pool.submit(timed, _unfinished, client, dest)
        manifest_head = pool.submit(timed, head_object, client, dest.child(MANIFEST_NAME))
        bucket_checked.result()
        listed, remote_manifest = listing.result(), manifest_head.result()
        unfinished = uploads.result()
    round_trip = min(latencies)
    etags = {path: listed[path].etag for path in listed}
    receipt = remote_manifest.metadata.get(RECEIPT_METADATA_KEY) if remote_manifest else None
    if receipt is not None and receipt == objects_receipt(manifest, etags):
        present = {item.path: etags[item.path] for item in manifest.files}
        return _Survey(present, True, listed, remote_manifest, unfinished, round_trip)
    candidates = [
        item for item in manifest.files if (found := listed.get(item.path)) and found.size == item.size
    ]
    with ThreadPoolExecutor(max_workers=_wave_width(client, len(candidates))) as pool:
        heads = pool.map(lambda item: head_object(client, dest.child(item.path)), candidates)
        present = {
            item.path: info.etag
            for item, info in zip(candidates, heads, strict=True)
            if _same(info, item.size, item.sha256)
        }
    return _Survey(present, False, listed, remote_manifest, unfinished, round_trip)


def _wave_width(client: S3Client, requests: int) -> int:
    """Metadata requests to send at once: all of them if the client's connection pool has room (each
    wave beyond the first costs another round trip), else as many as it keeps open."""
    return max(1, min(requests, int(client.meta.config.max_pool_connections)))


def _unfinished(client: S3Client, dest: S3Location) -> list[dict[str, object]]:
    with storage_errors(client, action="listing unfinished uploads under", uri=dest.uri):
        return unfinished_uploads(client, dest.bucket, dest.key)


def _abort_unfinished(
    client: S3Client, dest: S3Location, uploads: list[dict[str, object]], *, keep: set[str]
) -> None:
    prefix = f"{dest.key}/" if dest.key else ""
    for upload in uploads:
        key = str(upload["Key"])
        if key[len(prefix) :] in keep:
            continue
        with storage_errors(
            client, action="aborting an unfinished upload of", uri=f"s3://{dest.bucket}/{key}"
        ):
            abort_upload(client, dest.bucket, key, str(upload["UploadId"]))


def _send(
    client: S3Client,
    src: Path,
    dest: S3Location,
    files: list[ManifestFile],
    config: UploadConfig | None,
    round_trip: float,
) -> int:
    """Upload ``files``; returns the bytes reused from unfinished uploads of an earlier run."""
    if not files:
        return 0
    items = [UploadItem(src / f.path, dest.child(f.path), f.sha256, f.size) for f in files]
    total = sum(item.size for item in items)
    with Progress(total, f"upload {dest.uri}", log) as progress:
        reused = upload_files(client, items, config=config, callback=progress, round_trip=round_trip)
    log.info("sent %d files (%d bytes, %d reused) to %s", len(items), total - reused, reused, dest.uri)
    return reused


def _warn_about_strays(listed: Mapping[str, object], dest: S3Location, manifest: Manifest) -> None:
    """Objects under the prefix that the manifest does not list are left alone, but said out loud."""
    known = {item.path for item in manifest.files} | {MANIFEST_NAME}
    strays = sorted(set(listed) - known)
    if strays:
        log.warning(
            "%d objects under %s are not in the manifest and are left in place (e.g. %s); "
            "loaders that fetch the whole prefix will get them too",
            len(strays),
            dest.uri,
            ", ".join(strays[:3]),
        )


def _verify_remote(client: S3Client, dest: S3Location, files: list[ManifestFile]) -> dict[str, str]:
    """HEAD each object just sent: the store must have kept its size and sha256 (re-runs skip by them).

    Returns:
        Each file's ETag, for the manifest's receipt.
    """
    with ThreadPoolExecutor(max_workers=_wave_width(client, len(files))) as pool:
        infos = list(pool.map(lambda item: head_object(client, dest.child(item.path)), files))
    remote = list(zip(files, infos, strict=True))
    bad = [item.path for item, info in remote if not _same(info, item.size, item.sha256)]
    if bad:
        raise StorageError(
            f"after upload, {len(bad)} objects under {dest.uri} differ from the manifest: "
            f"{', '.join(bad[:5])}",
            fix="re-run `modelpipe upload`; if it repeats, check the S3 store keeps user metadata",
        )
    return {item.path: info.etag for item, info in remote if info is not None}
