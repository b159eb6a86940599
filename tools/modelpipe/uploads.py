"""Uploads that adapt to the link and are verified end to end.

How :func:`upload_files` sends a set of files:

1. The link's round trip is measured (or taken from the caller, who timed its own requests). Small files
   go first, several at once: they cost a round trip each, not bandwidth. The first goes alone and tells
   whether the store checks ``x-amz-checksum-sha256`` (it echoes the checksum back).
2. On a fast link (round trip up to :data:`FAST_LINK_RTT_SECONDS`, e.g. MinIO in the same cluster) each
   file goes as ONE request: one TCP stream is not window-bound there, and one request is the least work
   for both ends. On a slow link a file above the part size goes as a multipart upload whose parts travel
   in parallel, each stream being bounded by window / RTT.
3. How many transfers run at once: on a fast link :class:`StreamController` starts at 2 and doubles while
   measured throughput keeps growing (there the store's CPU, not the window, is the limit). On a slow link
   all ``max_concurrency`` streams start together: a stream added later starts cold beside warm ones and
   crawls (measured at 50 ms: 6 MiB/s for a part on a new connection while warm ones moved 22 MiB/s).

Integrity, without hashing a byte twice: a single request carries the file's sha256 as
``x-amz-checksum-sha256`` so the store itself refuses bytes that differ (BadDigest) and the client hashes
nothing. A multipart file is hashed as its parts are read (each byte read once, and the bytes hashed are the
bytes sent), every part carries a CRC32 (or Content-MD5 where the store does not check flexible
checksums), and the upload is completed only when the file's sha256 is the expected one; otherwise it is
aborted. A store that does not check checksums (no echo) gets each file hashed before it is sent and
Content-MD5 on every request. Payload signing is off for this reason (see
:func:`modelpipe.s3.make_s3_client`): it would hash every byte again for no extra check.

A large file's unfinished multipart upload left by a killed run is resumed: parts whose size and MD5 ETag
match the local bytes are kept. All transfers run to completion even if one fails, so a re-run only has
to send the failed ones.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from modelpipe.errors import ChecksumMismatchError, StorageError
from modelpipe.manifest import sha256_file
from modelpipe.multipart import (
    CHECKSUM_UNSUPPORTED_CODES,
    ChecksumUnsupported,
    MultipartFile,
    error_code,
    with_transfer_retries,
)
from modelpipe.s3 import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MULTIPART_CHUNKSIZE,
    MIB,
    SHA256_METADATA_KEY,
    S3Client,
    S3Location,
    storage_error,
    storage_errors,
)

log = logging.getLogger(__name__)

GIB = 1024 * MIB
# A link this close (a store in the same cluster or zone) lets one TCP stream run at full speed: with
# Linux's default 4 MiB send buffer, window / RTT is still 400 MiB/s at 10 ms.
FAST_LINK_RTT_SECONDS = 0.010
# On a fast link a file up to this size goes in one request. An interrupted request is sent again whole:
# a few seconds at in-cluster rates. S3 refuses single requests above 5 GiB.
FAST_LINK_SINGLE_REQUEST_MAX = 4 * GIB
S3_SINGLE_REQUEST_LIMIT = 5 * GIB
# The smallest multipart part S3 accepts (all parts but the last).
MIN_PART_SIZE = 5 * MIB
# Files up to this size cost a round trip, not bandwidth: they go first, all at once.
SMALL_FILE_BYTES = 1 * MIB
# A level of parallelism is kept only if it brings this much more throughput than the one before.
THROUGHPUT_GROWTH = 1.10
_FAILURES = (ClientError, BotoCoreError, StorageError, OSError)


@dataclass(frozen=True)
class UploadItem:
    """One file for :func:`upload_files`: local path, target, its sha256 (stored as metadata and checked
    by the store), size, and optionally the Content-Type browsers should see (e.g. ``image/png``)."""

    path: Path
    location: S3Location
    sha256: str
    size: int
    content_type: str | None = None


@dataclass(frozen=True)
class UploadConfig:
    """How :func:`upload_files` may send.

    Attributes:
        max_concurrency: Most transfers in flight at once (the controller decides how many up to this).
        part_size: Multipart part size (the S3 minimum is 5 MiB).
        single_request_max: Files up to this size go in one request; None chooses from the link
            (:data:`FAST_LINK_SINGLE_REQUEST_MAX` on a fast link, ``part_size`` on a slow one).
    """

    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    part_size: int = DEFAULT_MULTIPART_CHUNKSIZE
    single_request_max: int | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least 5 MiB (the S3 minimum), got {self.part_size}")

    def single_request_limit(self, *, fast_link: bool) -> int:
        """Largest file sent in one request on this link."""
        chosen = self.single_request_max
        if chosen is None:
            chosen = FAST_LINK_SINGLE_REQUEST_MAX if fast_link else self.part_size
        return min(chosen, S3_SINGLE_REQUEST_LIMIT)


class StreamController:
    """How many transfers may run at once: start at ``initial`` and double while throughput grows.

    A level's throughput counts only transfers started at that level and is measured once as many have
    finished as the level allows, so the previous level's ramp does not count. A level that brings less
    than :data:`THROUGHPUT_GROWTH` over the best so far sends the controller back to the best one, where
    it stays. Not thread-safe: the caller serialises calls.

    Args:
        initial: Transfers allowed at first.
        maximum: Never more than this.
        clock: Seconds, monotonic (tests pass a fake).
    """

    def __init__(self, *, initial: int, maximum: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = max(1, maximum)
        self.limit = max(1, min(initial, self.maximum))
        self._clock = clock
        self._settled = self.limit >= self.maximum
        self._best: tuple[int, float] | None = None
        self._level_started = clock()
        self._bytes = 0
        self._finished = 0

    @property
    def settled(self) -> bool:
        """True once the controller stopped probing."""
        return self._settled

    def now(self) -> float:
        """The controller's clock, to stamp a transfer's start."""
        return self._clock()

    def finished(self, started_at: float, size: int) -> None:
        """Record a finished transfer of ``size`` bytes started at ``started_at`` (from :meth:`now`)."""
        if self._settled or started_at < self._level_started:
            return
        self._bytes += size
        self._finished += 1
        if self._finished < self.limit:
            return
        rate = self._bytes / max(self._clock() - self._level_started, 1e-9)
        if self._best is None or rate >= self._best[1] * THROUGHPUT_GROWTH:
            self._best = (self.limit, rate)
            if self.limit >= self.maximum:
                self._settled = True
            else:
                self.limit = min(2 * self.limit, self.maximum)
                self._level_started, self._bytes, self._finished = self._clock(), 0, 0
        else:
            self.limit, self._settled = self._best[0], True
        log.debug("%.1f MiB/s measured; %d transfers at once%s", rate / MIB, self.limit,
                  " (settled)" if self._settled else "")  # fmt: skip


def upload_files(
    client: S3Client,
    items: Sequence[UploadItem],
    *,
    config: UploadConfig | None = None,
    callback: Callable[[int], None] | None = None,
    round_trip: float | None = None,
) -> int:
    """Upload files, each as one verified request or a resumable parallel multipart upload (see module).

    Each object gets its sha256 as ``x-amz-meta-sha256``; no object is completed with bytes whose sha256
    differs from its item's. A request whose connection fails is retried for up to
    :data:`modelpipe.multipart.TRANSFER_RETRY_SECONDS`.

    Args:
        client: From :func:`modelpipe.s3.make_s3_client`.
        items: Files and their targets.
        config: Concurrency bound, part size and single-request limit; :class:`UploadConfig` by default.
        callback: Called with byte counts as files and parts finish (e.g. a
            :class:`modelpipe.progress.Progress`).
        round_trip: The link's round trip in seconds if the caller measured it (upload_model times its
            survey); else :func:`measure_round_trip` measures it.

    Returns:
        Bytes not sent because finished parts of an earlier run were reused.

    Raises:
        ChecksumMismatchError: Naming every file whose bytes differ from its sha256 (nothing of them stays).
        StorageError: Naming the first failed object and how many failed.
    """
    if not items:
        return 0
    return _UploadRun(client, config or UploadConfig(), callback).run(items, round_trip)


def measure_round_trip(client: S3Client, bucket: str) -> float | None:
    """Shorter of two HEAD-bucket round trips in seconds (None if the store cannot be reached).

    HEAD on the bucket is the cheapest request a store answers (an error answer counts too: a key scoped
    to a prefix may get 403); a small PUT would measure the store's write path instead. Two, because the
    first may pay for opening the connection.
    """
    times: list[float] = []
    for _ in range(2):
        started = time.monotonic()
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError:
            pass
        except BotoCoreError:
            return None
        times.append(time.monotonic() - started)
    return min(times)


def upload_file(
    client: S3Client,
    path: Path,
    location: S3Location,
    *,
    sha256: str | None = None,
    content_type: str | None = None,
    config: UploadConfig | None = None,
    callback: Callable[[int], None] | None = None,
) -> None:
    """Upload one file, storing its sha256 (computed if not given) as metadata.

    Raises:
        StorageError: The upload failed.
    """
    digest = sha256 or sha256_file(path)
    item = UploadItem(path, location, digest, path.stat().st_size, content_type)
    upload_files(client, [item], config=config, callback=callback)


@dataclass
class _MultipartSend:
    """One file going up as parts: its upload, the parts in flight, and the sha256 of what was read."""

    item: UploadItem
    job: MultipartFile
    upload_id: str
    etags: dict[int, str] = field(default_factory=dict)
    failed: Exception | None = None
    sha256: str = ""


class _UploadRun:
    """State of one :func:`upload_files` call: slots, the controller, failures, what the store checks."""

    def __init__(self, client: S3Client, config: UploadConfig, callback: Callable[[int], None] | None):
        self.client = client
        self.config = config
        self.callback = callback
        self.slots = threading.Condition()
        self.in_flight = 0
        # Set by run() once the link is measured; nothing waits on a slot before that.
        self.controller: StreamController
        self.failures: list[tuple[UploadItem, Exception]] = []
        self.reused = 0
        # None until the first request says whether the store checks x-amz-checksum-sha256.
        self.store_checks_sha256: bool | None = None

    def run(self, items: Sequence[UploadItem], round_trip: float | None) -> int:
        small = sorted((i for i in items if i.size <= SMALL_FILE_BYTES), key=lambda i: i.size)
        large = sorted((i for i in items if i.size > SMALL_FILE_BYTES), key=lambda i: -i.size)
        rtt = (
            round_trip
            if round_trip is not None
            else measure_round_trip(self.client, items[0].location.bucket)
        )
        fast = rtt is not None and rtt <= FAST_LINK_RTT_SECONDS
        limit = self.config.single_request_limit(fast_link=fast)
        # A slow link needs parallel streams from the start (each is bounded by window / RTT), all at once:
        # streams added later ramp up beside warm ones and lose to them (at 50 ms, starting at half and
        # doubling took 4.1 s where starting all took 3.2-3.4 s).
        initial = 2 if fast else self.config.max_concurrency
        self.controller = StreamController(initial=initial, maximum=self.config.max_concurrency)
        log.info(
            "link round trip %s (%s): files up to %d MiB in one request; %d transfers at first, at most %d",
            f"{rtt * 1000:.1f} ms" if rtt is not None else "not measured",
            "fast" if fast else "slow",
            limit // MIB,
            self.controller.limit,
            self.config.max_concurrency,
        )
        multiparts: list[_MultipartSend] = []
        futures: list[Future[Any]] = []
        in_parts = iter([item for item in large if item.size > limit])
        with (
            ThreadPoolExecutor(self.config.max_concurrency, thread_name_prefix="s3-upload") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="s3-start") as starter,
        ):
            # Each multipart upload is created (or found to resume) one file ahead, in the background: its
            # round trips then overlap the transfers instead of holding back the first part.
            starting: deque[Future[_MultipartSend | None]] = deque()

            def start_next() -> None:
                if (item := next(in_parts, None)) is not None:
                    starting.append(starter.submit(self._start_multipart, item))

            start_next()
            # Small files first, as they cost round trips, not bandwidth: the controller's limit holds back
            # only large transfers, so small ones never wait behind them.
            if small:
                # Alone, so the later requests know whether the store checks the sha256 itself.
                self._guarded(small[0], self._send_whole, small[0])
            for item in small[1:]:
                futures.append(pool.submit(self._guarded, item, self._send_whole, item))
            for item in large:
                if item.size <= limit:
                    futures.append(self._submit(pool, item, self._send_whole, item))
                    continue
                send = starting.popleft().result()
                start_next()
                if send is not None:
                    multiparts.append(send)
                    futures.extend(self._send_parts(pool, send))
            for future in futures:
                future.result()
            for future in [pool.submit(self._finish_multipart, send) for send in multiparts]:
                future.result()
        self._raise_failures(len(items))
        return self.reused

    # Slots: at most `controller.limit` transfers in flight; each finished one feeds the controller.

    def _submit(
        self, pool: ThreadPoolExecutor, item: UploadItem, send: Callable[..., int], *args: Any
    ) -> Future[None]:
        """Wait for a free slot, then run ``send(*args)`` on the pool; a failure is recorded for ``item``."""
        with self.slots:
            self.slots.wait_for(lambda: self.in_flight < self.controller.limit)
            self.in_flight += 1
        return pool.submit(self._in_slot, item, send, *args)

    def _slot_free(self) -> bool:
        with self.slots:
            return self.in_flight < self.controller.limit

    def _in_slot(self, item: UploadItem, send: Callable[..., int], *args: Any) -> None:
        started = self.controller.now()
        size = 0
        try:
            size = self._guarded(item, send, *args)
        finally:
            with self.slots:
                self.in_flight -= 1
                self.controller.finished(started, size)
                self.slots.notify_all()

    def _guarded(self, item: UploadItem, send: Callable[..., int], *args: Any) -> int:
        """``send(*args)``; a transfer failure is recorded for ``item`` (the run goes on), 0 bytes counted."""
        try:
            return send(*args)
        except (ChecksumMismatchError, *_FAILURES) as err:
            with self.slots:
                self.failures.append((item, err))
            return 0

    # Whole files in one request.

    def _send_whole(self, item: UploadItem) -> int:
        """Send ``item`` in one request; the store checks its sha256 (or this client does, before)."""
        extra = _object_args(item.sha256, item.content_type)
        if self.store_checks_sha256 is False:
            md5 = _verified_md5(item)
            response = self._put(item, {**extra, "ContentMD5": md5})
        else:
            try:
                response = self._put(item, {**extra, "ChecksumSHA256": _b64(item.sha256)})
            except ClientError as err:
                if error_code(err) == "BadDigest":
                    raise _bad_digest(item) from err
                if self.store_checks_sha256 is None and error_code(err) in CHECKSUM_UNSUPPORTED_CODES:
                    log.info(
                        "the store refuses x-amz-checksum-sha256 (%s): files are hashed here", error_code(err)
                    )
                    self.store_checks_sha256 = False
                    return self._send_whole(item)
                raise
            echoed = response.get("ChecksumSHA256") == _b64(item.sha256)
            if self.store_checks_sha256 is None:
                self.store_checks_sha256 = echoed
                if not echoed:
                    log.info("the store does not check x-amz-checksum-sha256: files are hashed here")
            if not echoed and sha256_file(item.path) != item.sha256:
                # The store kept unchecked bytes that are not the file we vouch for: take them back.
                with storage_errors(self.client, action="deleting", uri=item.location.uri):
                    self.client.delete_object(Bucket=item.location.bucket, Key=item.location.key)
                raise _bad_digest(item)
        if self.callback is not None:
            self.callback(item.size)
        return item.size

    def _put(self, item: UploadItem, extra: dict[str, Any]) -> dict[str, Any]:
        def put() -> dict[str, Any]:
            with item.path.open("rb") as source:
                # Up to a part's size the body goes from memory, as parts do, so it is sent at once
                # (see modelpipe.s3.make_s3_client: no `Expect: 100-continue` round trip first).
                body = source.read() if item.size <= self.config.part_size else source
                response = self.client.put_object(
                    Bucket=item.location.bucket, Key=item.location.key, Body=body, **extra
                )
                return dict(response)

        result: dict[str, Any] = with_transfer_retries(put, f"uploading {item.location.uri}")
        return result

    # Large files as parts.

    def _start_multipart(self, item: UploadItem) -> _MultipartSend | None:
        job = MultipartFile(
            self.client,
            item.path,
            item.location.bucket,
            item.location.key,
            extra_args=_object_args(item.sha256, item.content_type),
            part_size=self.config.part_size,
        )
        try:
            upload_id, listed = job.resume_or_create()
        except _FAILURES as err:
            self._record(item, err)
            return None
        send = _MultipartSend(item, job, upload_id)
        send.etags = listed
        return send

    def _send_parts(self, pool: ThreadPoolExecutor, send: _MultipartSend) -> list[Future[None]]:
        """Read the file in order: hash it, keep the parts an earlier run finished, send the others."""
        futures: list[Future[None]] = []
        digest = hashlib.sha256()
        # Parts read but not hashed yet. Hashing waits until every free slot has a part: sha256 of 16 MiB
        # is ~25 ms of this thread, and streams started that much apart do not share the link evenly (at
        # 50 ms, the last of ten parts started 0.2 s after the first took 2-2.8 s instead of 1.5). The
        # bytes hashed are the bytes sent: a part's bytes do not change once read.
        unhashed: list[bytes] = []
        listed, send.etags = send.etags, {}
        try:
            with send.item.path.open("rb") as source:
                for number in range(1, send.job.count + 1):
                    if unhashed and not self._slot_free():
                        for data in unhashed:
                            digest.update(data)
                        unhashed.clear()
                    data = _read_exactly(source, send.job.part_size_of(number))
                    unhashed.append(data)
                    etag = listed.get(number)
                    if etag is not None:  # checked against these bytes by resume_or_create
                        send.etags[number] = etag
                        self.reused += len(data)
                        if self.callback is not None:
                            self.callback(len(data))
                    else:
                        futures.append(self._submit(pool, send.item, self._send_part, send, number, data))
        except OSError as err:
            send.failed = err
        for data in unhashed:
            digest.update(data)
        send.sha256 = digest.hexdigest()
        if len(listed) > len(send.etags):
            log.info(
                "%s: %d of %d earlier parts reused", send.item.location.uri, len(send.etags), len(listed)
            )
        return futures

    def _send_part(self, send: _MultipartSend, number: int, data: bytes) -> int:
        try:
            try:
                # CRC32 only where a whole-file sha256 was seen checked: flexible checksums are known there.
                etag = send.job.upload_part(
                    send.upload_id, number, data, crc32=self.store_checks_sha256 is True
                )
            except ChecksumUnsupported as unsupported:
                log.info(
                    "the store does not check x-amz-checksum-crc32 (%s): parts carry Content-MD5", unsupported
                )
                self.store_checks_sha256 = False
                etag = unsupported.etag or send.job.upload_part(send.upload_id, number, data, crc32=False)
        except _FAILURES as err:
            send.failed = send.failed or err
            return 0
        with self.slots:
            send.etags[number] = etag
        if self.callback is not None:
            self.callback(len(data))
        return len(data)

    def _finish_multipart(self, send: _MultipartSend) -> None:
        """Complete the upload if every part is in and the bytes read were the file's; abort if not."""
        item = send.item
        if send.failed is not None:
            # Parts that made it stay for the next run to resume.
            self._record(item, send.failed)
            return
        try:
            if send.sha256 != item.sha256:
                send.job.abort(send.upload_id)
                self._record(item, _bad_digest(item))
                return
            send.job.complete(send.upload_id, send.etags)
        except _FAILURES as err:
            self._record(item, err)

    def _record(self, item: UploadItem, err: Exception) -> None:
        with self.slots:
            self.failures.append((item, err))

    def _raise_failures(self, total: int) -> None:
        if not self.failures:
            return
        corrupted = [err for _, err in self.failures if isinstance(err, ChecksumMismatchError)]
        if corrupted:
            # A file that is not what the manifest says matters more than a transfer to retry.
            first_corrupted = corrupted[0]
            if len(corrupted) > 1:
                first_corrupted.message += f" (and {len(corrupted) - 1} more files differ)"
            raise first_corrupted
        item, first = self.failures[0]
        if isinstance(first, StorageError):
            mapped = first
        elif isinstance(first, OSError):
            mapped = StorageError(
                f"cannot read {item.path} while uploading it to {item.location.uri}: {first}"
            )
        else:
            mapped = storage_error(
                first, action="uploading", uri=item.location.uri, endpoint=self.client.meta.endpoint_url
            )
        if len(self.failures) > 1:
            mapped.message += f" (and {len(self.failures) - 1} more of {total} files failed)"
        raise mapped from first


def _object_args(sha256: str, content_type: str | None) -> dict[str, Any]:
    """Request arguments every object carries: the sha256 metadata and, if given, the Content-Type."""
    extra: dict[str, Any] = {"Metadata": {SHA256_METADATA_KEY: sha256}}
    if content_type:
        extra["ContentType"] = content_type
    return extra


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _verified_md5(item: UploadItem) -> str:
    """Base64 MD5 of the file, after checking its sha256 in the same read (stores that check nothing)."""
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with item.path.open("rb") as source:
        while chunk := source.read(8 * MIB):
            sha256.update(chunk)
            md5.update(chunk)
    if sha256.hexdigest() != item.sha256:
        raise _bad_digest(item)
    return base64.b64encode(md5.digest()).decode()


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise OSError(f"{source.name} shrank while it was being uploaded")
    return data


def _bad_digest(item: UploadItem) -> ChecksumMismatchError:
    return ChecksumMismatchError(
        f"{item.path} does not match its recorded sha256 {item.sha256[:12]}... (not uploaded)",
        fix="download the model again, then re-run the upload",
    )
