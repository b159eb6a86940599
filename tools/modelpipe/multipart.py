"""Transfers that survive interruptions: resumable multipart uploads and retries across store restarts.

A killed upload leaves its multipart upload unfinished in the store; the next run resumes it from the parts
whose size and MD5 ETag match the local bytes, and aborts what it cannot resume, so nothing unfinished is
left once a run completes. Used by :func:`modelpipe.uploads.upload_files`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from modelpipe import s3_pages
from modelpipe.s3_pages import pages

log = logging.getLogger(__name__)

# A transfer request (a part, a small file) whose connection fails is retried, on top of botocore's own
# few attempts, with backoff for this long, so a store restarting (a pod rescheduled, a SeaweedFS
# restart) does not fail the step; a request that gets an answer (an error code) is not retried here.
TRANSFER_RETRY_SECONDS = 60.0
# S3 numbers the parts of one upload from 1 to this.
MAX_PARTS = 10_000
_TRANSFER_BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 15.0)
_CONNECTION_ERRORS = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)
_UNLISTABLE_CODES = frozenset({"AccessDenied", "NotImplemented", "403", "501"})


# What stores answer when they do not know a flexible-checksum header (older MinIO, Ceph, proxies).
CHECKSUM_UNSUPPORTED_CODES = frozenset({"InvalidArgument", "NotImplemented", "InvalidRequest", "501"})


class ChecksumUnsupported(Exception):
    """The store does not check x-amz-checksum-* headers; ``etag`` is set if the part still arrived intact."""

    def __init__(self, reason: str, *, etag: str | None = None) -> None:
        super().__init__(reason)
        self.etag = etag


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def error_code(err: Exception) -> str | None:
    """The S3 error code of a ClientError (``NoSuchKey``, ``403``...), else None."""
    return str(err.response.get("Error", {}).get("Code")) if isinstance(err, ClientError) else None


def with_transfer_retries(call: Callable[[], Any], what: str) -> Any:
    """``call()``, retried with backoff while its connection fails, for up to TRANSFER_RETRY_SECONDS."""
    deadline = time.monotonic() + TRANSFER_RETRY_SECONDS
    for attempt in range(1, 1_000):
        try:
            return call()
        except _CONNECTION_ERRORS as err:
            delay = _TRANSFER_BACKOFF_SECONDS[min(attempt, len(_TRANSFER_BACKOFF_SECONDS)) - 1]
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s: %s; retrying in %.0f s", what, type(err).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable: the deadline ends the loop")


class MultipartFile:
    """One large file as a multipart upload: resume or start it, send parts, complete or abort it.

    :func:`modelpipe.uploads.upload_files` reads the file once, in order, and decides per part whether an
    earlier run's part can stay (its MD5 ETag matches the local bytes) or goes again.

    Args:
        client: A boto3 S3 client.
        path: The local file.
        bucket: Target bucket.
        key: Target key.
        extra_args: CreateMultipartUpload arguments (Metadata, ContentType).
        part_size: Part size in bytes (the last part is shorter); a multiple of it for a file that would
            need more than :data:`MAX_PARTS` parts.
    """

    def __init__(
        self,
        client: Any,
        path: Path,
        bucket: str,
        key: str,
        *,
        extra_args: dict[str, Any],
        part_size: int,
    ) -> None:
        self.client = client
        self.path = path
        self.bucket, self.key = bucket, key
        self.uri = f"s3://{bucket}/{key}"
        self.extra_args = extra_args
        self.size = path.stat().st_size
        # S3 numbers parts 1..10000: a larger file (e.g. a 200 GiB single-file checkpoint at 16 MiB) gets
        # the smallest multiple of the part size that fits, the same on every run so parts resume.
        self.part_size = part_size * max(1, -(-self.size // (part_size * MAX_PARTS)))
        self.count = max(1, -(-self.size // self.part_size))

    def part_size_of(self, number: int) -> int:
        """Bytes in part ``number`` (1-based)."""
        return min(self.part_size, self.size - (number - 1) * self.part_size)

    def resume_or_create(self) -> tuple[str, dict[int, str]]:
        """The newest unfinished upload of this key whose parts all match the file, with its
        ``{part: ETag}``; else a new upload and ``{}``.

        Every other unfinished upload of the key is aborted. A part matches when its size is what this
        part size gives and its ETag is the MD5 of those local bytes (what S3 returns for a part): a file
        that changed since, or a different part size, starts over rather than mixing content. An upload
        without parts is not resumed either: nothing would be saved, and its metadata may be another
        version's.
        """
        uploads = sorted(
            unfinished_uploads(self.client, self.bucket, self.key, exact=True),
            key=lambda upload: upload["Initiated"],
            reverse=True,
        )
        chosen: tuple[str, dict[int, str]] | None = None
        for upload in uploads:
            parts = self._listed_parts(upload["UploadId"]) if chosen is None else None
            if parts is not None:
                chosen = (upload["UploadId"], parts)
            else:
                abort_upload(self.client, self.bucket, self.key, upload["UploadId"])
        if chosen is not None:
            log.info("resuming %s: %d of %d parts listed", self.uri, len(chosen[1]), self.count)
            return chosen
        response = with_transfer_retries(
            lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key, **self.extra_args),
            f"starting the upload of {self.uri}",
        )
        return str(response["UploadId"]), {}

    def upload_part(self, upload_id: str, number: int, data: bytes, *, crc32: bool) -> str:
        """Send one part with a checksum the store verifies (it refuses bytes that changed on the way).

        ``crc32``: ``x-amz-checksum-crc32`` (2.5x cheaper to compute than MD5 here); use it only with a
        store known to check flexible checksums. If the store answers without echoing it (it did not
        check), the ETag must be the MD5 of the bytes. Otherwise Content-MD5, which every store checks.

        Returns:
            The part's ETag.

        Raises:
            ChecksumUnsupported: The store refused the CRC32 header (send again with ``crc32=False``).
        """
        checksum = _crc32_b64(data) if crc32 else None
        extra = {"ChecksumCRC32": checksum} if crc32 else {"ContentMD5": _md5_b64(data)}
        try:
            response = with_transfer_retries(
                lambda: self.client.upload_part(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    **extra,
                ),
                f"uploading part {number} of {self.uri}",
            )
        except ClientError as err:
            if crc32 and error_code(err) in CHECKSUM_UNSUPPORTED_CODES:
                raise ChecksumUnsupported(error_code(err) or "") from err
            raise
        etag = str(response["ETag"])
        if crc32 and response.get("ChecksumCRC32") != checksum:
            if etag.strip('"').lower() != hashlib.md5(data).hexdigest():
                raise ChecksumUnsupported("no CRC32 echo and an ETag that is not the part's MD5")
            raise ChecksumUnsupported("no CRC32 echo", etag=etag)
        return etag

    def complete(self, upload_id: str, etags: dict[int, str]) -> None:
        """Join the parts into the object."""
        with_transfer_retries(
            lambda: self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
            ),
            f"completing {self.uri}",
        )

    def abort(self, upload_id: str) -> None:
        """Drop the upload and its parts."""
        abort_upload(self.client, self.bucket, self.key, upload_id)

    def _listed_parts(self, upload_id: str) -> dict[int, str] | None:
        """``{part number: ETag}`` of an upload whose parts all match the local file, else None."""
        listed: dict[int, str] = {}
        listing = pages(
            self.client.list_parts,
            s3_pages.PARTS,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=upload_id,
        )
        with self.path.open("rb") as source:
            for page in listing:
                for part in page.get("Parts", []):
                    number, etag = int(part["PartNumber"]), str(part["ETag"])
                    if not 1 <= number <= self.count or int(part["Size"]) != self.part_size_of(number):
                        return None
                    source.seek((number - 1) * self.part_size)
                    if (
                        etag.strip('"').lower()
                        != hashlib.md5(source.read(self.part_size_of(number))).hexdigest()
                    ):
                        return None
                    listed[number] = etag
        return listed or None


def unfinished_uploads(client: Any, bucket: str, key: str, *, exact: bool = False) -> list[dict[str, Any]]:
    """Unfinished multipart uploads of ``key`` (``exact``) or of every key under ``key/`` as a prefix.

    A store that does not offer the listing (NotImplemented) or does not grant it to this key (AccessDenied)
    has nothing to resume: the result is then empty.

    Raises:
        ClientError, BotoCoreError: Listing failed otherwise (callers map them to StorageError).
    """
    prefix = key if exact else (f"{key}/" if key else "")
    found: list[dict[str, Any]] = []
    listing = pages(
        client.list_multipart_uploads,
        s3_pages.UPLOADS,
        Bucket=bucket,
        Prefix=prefix,
    )
    try:
        for page in listing:
            found.extend(u for u in page.get("Uploads", []) if not exact or u["Key"] == key)
    except ClientError as err:
        if error_code(err) not in _UNLISTABLE_CODES:
            raise
        log.debug("cannot list multipart uploads under s3://%s/%s (%s)", bucket, prefix, error_code(err))
        return []
    return found


def abort_upload(client: Any, bucket: str, key: str, upload_id: str) -> None:
    """Abort one unfinished multipart upload (gone already counts as done)."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as err:
        if error_code(err) != "NoSuchUpload":
            raise
    log.info("aborted unfinished multipart upload of s3://%s/%s", bucket, key)
