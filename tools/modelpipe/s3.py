"""S3 access shared by every step: client from the data connection, URIs, parallel transfers, clear errors.

Usage (the pattern upload, publish, benchmark and the local session follow)::

    settings = S3Settings.from_env()                 # AWS_S3_ENDPOINT, AWS_ACCESS_KEY_ID, ...
    client = make_s3_client(settings)
    where = parse_s3_uri("s3://models/tiny-sd")
    upload_bytes(client, b"...", where.child("reports/summary.json"))
    download_prefix(client, where, Path("/tmp/model"))

Files go up through :mod:`modelpipe.uploads` (verified, adaptive to the link).

Every botocore failure leaves this module as :class:`StorageError` (or :class:`StorageAuthError` for refused
credentials) naming the URI and the environment variable to check, never a secret value.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeAlias
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import ProgressCallbackInvoker, TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    ReadTimeoutError,
)

from modelpipe import s3_pages
from modelpipe.config import AWS_ACCESS_KEY_ID, AWS_S3_ENDPOINT, AWS_SECRET_ACCESS_KEY, S3Settings
from modelpipe.errors import ConfigError, StorageAuthError, StorageError
from modelpipe.manifest import MANIFEST_NAME, read_manifest, sha256_bytes, sha256_file, verify_files
from modelpipe.multipart import error_code
from modelpipe.s3_pages import pages

# boto3 builds its client classes at run time, so there is no static type to name (no boto3-stubs here).
S3Client: TypeAlias = Any

log = logging.getLogger(__name__)

# Object metadata key holding the content's hex sha256 (sent as x-amz-meta-sha256). Multipart ETags are not
# content hashes, so this is what skip decisions and post-upload checks compare.
SHA256_METADATA_KEY = "sha256"
MIB = 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 10
DEFAULT_MULTIPART_CHUNKSIZE = 16 * MIB
DEFAULT_MAX_ATTEMPTS = 5
# Per-request timeouts: connecting is quick on any healthy store; a 16 MiB part is acknowledged within
# seconds. botocore retries each request DEFAULT_MAX_ATTEMPTS times with its own short backoff.
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
# Error codes S3-compatible stores return when the key id or secret is wrong or lacks rights.
_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
        "403",
        "401",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# Bucket naming rules, relaxed to what MinIO and SeaweedFS accept (dots, underscores are refused on AWS too).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_CREDENTIALS_FIX = (
    f"check {AWS_ACCESS_KEY_ID} and {AWS_SECRET_ACCESS_KEY} (and that this key may use the bucket)"
)


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key (or key prefix, without leading or trailing ``/``; empty for the bucket root)."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        """``s3://bucket/key`` (``s3://bucket`` for the root)."""
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    def child(self, relative: str) -> S3Location:
        """The location of ``relative`` (a POSIX path) under this prefix."""
        relative = relative.strip("/")
        return S3Location(self.bucket, f"{self.key}/{relative}" if self.key else relative)

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD request tells about an object.

    Attributes:
        size: Content length in bytes.
        etag: The store's ETag (an MD5 only for single-part uploads).
        metadata: All user metadata, keys in lower case.
    """

    size: int
    etag: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str | None:
        """The ``sha256`` user metadata if the object was uploaded by modelpipe, else None."""
        return self.metadata.get(SHA256_METADATA_KEY)


@dataclass(frozen=True)
class ListedObject:
    """What a listing tells about an object: its size and ETag (quotes stripped, lower case). Any write of
    other bytes gets another ETag."""

    size: int
    etag: str


def parse_s3_uri(uri: str) -> S3Location:
    """Split ``s3://BUCKET[/KEY]`` into bucket and key.

    Raises:
        ConfigError: The URI has another scheme, no bucket, an invalid bucket name, or ``..`` in the key.
    """
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        raise ConfigError(f"{uri!r} is not an s3:// URI", fix="use s3://BUCKET/PREFIX")
    bucket = parsed.netloc
    if not bucket:
        raise ConfigError(f"{uri!r} has no bucket", fix="use s3://BUCKET/PREFIX")
    if not _BUCKET.match(bucket):
        raise ConfigError(
            f"{uri!r}: bucket name {bucket!r} is invalid",
            fix="bucket names are 3-63 lowercase letters, digits, dots or hyphens",
        )
    if parsed.query or parsed.fragment:
        raise ConfigError(f"{uri!r} has a query or fragment", fix="use s3://BUCKET/PREFIX without ? or #")
    key = parsed.path.strip("/")
    if key and (".." in PurePosixPath(key).parts or "//" in key):
        raise ConfigError(f"{uri!r}: key {key!r} contains '..' or an empty segment")
    return S3Location(bucket, key)


def make_s3_client(
    settings: S3Settings, *, max_pool_connections: int = 2 * DEFAULT_MAX_CONCURRENCY + 4
) -> S3Client:
    """A boto3 S3 client for an OpenShift AI data connection (MinIO, SeaweedFS, Ceph RGW or AWS).

    Path-style addressing (no ``bucket.host`` DNS), standard retries with backoff, and checksums only when
    the operation requires them (several S3-compatible stores reject the newer default trailers). Payload
    signing is off: every request with a body carries a checksum the store verifies instead
    (x-amz-checksum-sha256 or Content-MD5, see :mod:`modelpipe.uploads`), and signing would hash each byte
    sent once more on the client (botocore always signs plain-http payloads otherwise).

    Args:
        settings: Endpoint (AWS_S3_ENDPOINT; None means AWS), credentials and region.
        max_pool_connections: HTTP connections kept open; keep it at least the transfer concurrency.

    Raises:
        ConfigError: Credentials are missing or AWS_S3_ENDPOINT has no http(s) scheme.
    """
    access_key_id, secret_access_key = settings.key_pair()
    endpoint = settings.endpoint_url
    if endpoint is not None and urlparse(endpoint).scheme not in {"http", "https"}:
        raise ConfigError(
            f"{AWS_S3_ENDPOINT}={endpoint!r} has no http:// or https:// scheme",
            fix=f"set {AWS_S3_ENDPOINT} to e.g. http://minio.namespace.svc:9000",
        )
    config = Config(
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        signature_version="s3v4",
        retries={"max_attempts": DEFAULT_MAX_ATTEMPTS, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session(
        aws_access_key_id=access_key_id.get_secret_value(),
        aws_secret_access_key=secret_access_key.get_secret_value(),
        region_name=settings.region,
    )
    client = session.client("s3", endpoint_url=endpoint, config=config)
    # Last on the event where botocore adds the header, so it runs after botocore's handler.
    client.meta.events.register_last("before-call.s3", _send_in_memory_body_at_once)
    return client


def _send_in_memory_body_at_once(params: dict[str, Any], **_: Any) -> None:
    """Drop ``Expect: 100-continue`` from a request whose body is in memory (a part, a small file, a report).

    botocore asks every PUT body to wait for the server's ``100 Continue``: one round trip before the first
    byte (50 ms a part on a 50 ms link), to avoid sending a body the store would refuse. An in-memory body
    is at most a part (16 MiB by default): sending it in vain once costs less than a round trip on every
    request, and a refusal still comes back as the answer. A body streamed from a file (a large single
    request on a fast link) keeps waiting.
    """
    if isinstance(params.get("body"), io.BytesIO):
        params["headers"].pop("Expect", None)


def transfer_config(
    *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY, chunksize: int = DEFAULT_MULTIPART_CHUNKSIZE
) -> TransferConfig:
    """TransferConfig for parallel multipart transfers (files above ``chunksize`` are split into parts)."""
    return TransferConfig(
        multipart_threshold=chunksize,
        multipart_chunksize=chunksize,
        max_concurrency=max_concurrency,
        use_threads=True,
        preferred_transfer_client="classic",
    )


def storage_error(err: Exception, *, action: str, uri: str, endpoint: str | None = None) -> StorageError:
    """Translate a botocore/boto3 exception into a StorageError naming what failed (never a secret).

    Args:
        err: The exception raised by botocore or s3transfer.
        action: What was being done, e.g. ``"uploading"``.
        uri: The s3:// URI involved.
        endpoint: The endpoint URL, shown for connection failures.
    """
    where = endpoint or "the S3 endpoint"
    if isinstance(err, NoCredentialsError):
        return StorageAuthError(f"no S3 credentials while {action} {uri}", fix=_CREDENTIALS_FIX)
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", "unknown"))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _AUTH_CODES or status in {401, 403}:
            return StorageAuthError(
                f"S3 refused the credentials while {action} {uri} ({code})", fix=_CREDENTIALS_FIX
            )
        parsed = urlparse(uri)
        # HEAD answers carry no error body: a bare 404 on the bucket itself means the bucket is missing.
        if code == "NoSuchBucket" or (code in _NOT_FOUND_CODES and not parsed.path.strip("/")):
            return StorageError(
                f"bucket {parsed.netloc!r} does not exist at {where} ({action} {uri})",
                fix="create the bucket or point --model-uri / AWS_S3_BUCKET at an existing one",
            )
        if code in _NOT_FOUND_CODES:
            return StorageError(f"{uri} does not exist ({action})")
        message = str(error.get("Message", "")).strip()
        return StorageError(f"S3 error while {action} {uri}: {code}{': ' + message if message else ''}")
    if isinstance(err, ReadTimeoutError | ConnectTimeoutError):
        return StorageError(
            f"{where} did not answer within {_timeout_of(err)} s ({DEFAULT_MAX_ATTEMPTS} attempts) "
            f"while {action} {uri}",
            fix=f"check that the S3 store at {AWS_S3_ENDPOINT} is up and not overloaded, then re-run",
        )
    if isinstance(err, BotoCoreError):
        return StorageError(
            f"cannot reach {where} while {action} {uri}: {type(err).__name__}", fix=f"check {AWS_S3_ENDPOINT}"
        )
    return StorageError(f"S3 failure while {action} {uri}: {type(err).__name__}: {err}")


def _timeout_of(err: Exception) -> int:
    return READ_TIMEOUT_SECONDS if isinstance(err, ReadTimeoutError) else CONNECT_TIMEOUT_SECONDS


@contextmanager
def storage_errors(client: S3Client, *, action: str, uri: str) -> Iterator[None]:
    """Context manager: botocore exceptions inside become StorageError via :func:`storage_error`."""
    try:
        yield
    except (ClientError, BotoCoreError) as err:
        raise storage_error(err, action=action, uri=uri, endpoint=client.meta.endpoint_url) from err


def check_bucket(client: S3Client, bucket: str) -> None:
    """Fail early and clearly when the bucket is missing or the endpoint is unreachable.

    A 403 is not treated as final here: keys scoped to a prefix may not list the bucket yet may read and
    write objects, so the first object request decides (and reports refused credentials).

    Raises:
        StorageError: The bucket does not exist or the endpoint is unreachable.
    """
    try:
        client.head_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError) as err:
        if error_code(err) in {"403", "AccessDenied"}:
            log.debug("HEAD bucket %s refused (403); object requests will tell", bucket)
            return
        raise storage_error(
            err, action="opening bucket", uri=f"s3://{bucket}", endpoint=client.meta.endpoint_url
        ) from err


def head_object(client: S3Client, location: S3Location) -> ObjectInfo | None:
    """Size, sha256 metadata and ETag of an object, or None if it does not exist.

    Raises:
        StorageError: Any failure other than "not found".
    """
    try:
        response = client.head_object(Bucket=location.bucket, Key=location.key)
    except (ClientError, BotoCoreError) as err:
        if error_code(err) in _NOT_FOUND_CODES:
            return None
        raise storage_error(
            err, action="checking", uri=location.uri, endpoint=client.meta.endpoint_url
        ) from err
    metadata = {k.lower(): v for k, v in response.get("Metadata", {}).items()}
    return ObjectInfo(
        size=int(response["ContentLength"]),
        etag=normal_etag(str(response.get("ETag", ""))),
        metadata=metadata,
    )


def normal_etag(etag: str) -> str:
    """An ETag as HEAD and listings both give it: no quotes, lower case."""
    return etag.strip('"').lower()


def upload_bytes(
    client: S3Client,
    data: bytes,
    location: S3Location,
    *,
    content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Put a small in-memory payload (a manifest, a report) in one request with its sha256 metadata (plus
    ``metadata``) and Content-MD5.

    Raises:
        StorageError: The request failed.
    """
    extra: dict[str, Any] = {"Metadata": {**(metadata or {}), SHA256_METADATA_KEY: sha256_bytes(data)}}
    if content_type:
        extra["ContentType"] = content_type
    # Content-MD5 lets the store refuse a payload that changed on the way (every S3 store checks it).
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    with storage_errors(client, action="uploading", uri=location.uri):
        client.put_object(Bucket=location.bucket, Key=location.key, Body=data, ContentMD5=md5, **extra)


def delete_object(client: S3Client, location: S3Location) -> None:
    """Delete one object (no error if it does not exist).

    Raises:
        StorageError: The request failed.
    """
    with storage_errors(client, action="deleting", uri=location.uri):
        client.delete_object(Bucket=location.bucket, Key=location.key)


def list_objects(client: S3Client, location: S3Location) -> dict[str, int]:
    """Objects under a prefix as ``{relative path: size}`` (the prefix is treated as a folder).

    Raises:
        StorageError: Listing failed.
    """
    return {path: listed.size for path, listed in list_objects_with_etags(client, location).items()}


def list_objects_with_etags(client: S3Client, location: S3Location) -> dict[str, ListedObject]:
    """Objects under a prefix as ``{relative path: size and ETag}`` (the prefix is treated as a folder).

    Raises:
        StorageError: Listing failed.
    """
    prefix = f"{location.key}/" if location.key else ""
    found: dict[str, ListedObject] = {}
    with storage_errors(client, action="listing", uri=location.uri):
        listing = pages(
            client.list_objects_v2,
            s3_pages.OBJECTS,
            Bucket=location.bucket,
            Prefix=prefix,
        )
        for page in listing:
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(prefix) :]
                if relative and not relative.endswith("/"):
                    found[relative] = ListedObject(int(obj["Size"]), normal_etag(str(obj.get("ETag", ""))))
    return found


def download_prefix(
    client: S3Client,
    location: S3Location,
    dest: Path,
    *,
    config: TransferConfig | None = None,
    callback: Callable[[int], None] | None = None,
) -> Path:
    """Download every object under ``location`` into ``dest`` (same relative paths), in parallel.

    A local file that already has the object's size and sha256 metadata is kept. When the prefix holds a
    ``manifest.json``, the folder is verified against it afterwards.

    Returns:
        ``dest``.

    Raises:
        StorageError: The prefix is empty, a key is unsafe, or a transfer failed.
        ChecksumMismatchError: A downloaded file does not match manifest.json.
    """
    objects = list_objects(client, location)
    if not objects:
        raise StorageError(f"no objects under {location.uri}", fix="check the URI; upload the model first")
    download_objects(client, location, sorted(objects), dest, config=config, callback=callback, sizes=objects)
    if MANIFEST_NAME in objects:
        verify_files(dest, read_manifest(dest / MANIFEST_NAME))
    return dest


def download_objects(
    client: S3Client,
    location: S3Location,
    relatives: Sequence[str],
    dest: Path,
    *,
    config: TransferConfig | None = None,
    callback: Callable[[int], None] | None = None,
    sizes: Mapping[str, int] | None = None,
) -> int:
    """Download the named objects under ``location`` into ``dest``, in parallel; returns how many moved.

    A local file that already has the object's size and sha256 metadata is kept.

    Raises:
        StorageError: A key is unsafe or missing, or a transfer failed.
    """
    known = sizes if sizes is not None else list_objects(client, location)
    todo: list[str] = []
    for relative in relatives:
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts:
            raise StorageError(f"refusing unsafe object key {location.child(relative).uri}")
        if relative not in known:
            raise StorageError(f"{location.child(relative).uri} does not exist")
        if _local_copy_current(client, location.child(relative), dest / relative, known[relative]):
            continue
        todo.append(relative)
    log.info("downloading %d of %d objects from %s to %s", len(todo), len(relatives), location.uri, dest)
    subscribers = [ProgressCallbackInvoker(callback)] if callback else None
    with create_transfer_manager(client, config or transfer_config()) as manager:
        futures = []
        for relative in todo:
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            source = location.child(relative)
            futures.append(
                (source, manager.download(source.bucket, source.key, str(target), subscribers=subscribers))
            )
        for source, future in futures:
            try:
                future.result()
            except (ClientError, BotoCoreError) as err:
                raise storage_error(
                    err, action="downloading", uri=source.uri, endpoint=client.meta.endpoint_url
                ) from err
    return len(todo)


def download_folder_of(client: S3Client, uri: str, dest: Path) -> Path:
    """Download every object beside ``uri`` (its "folder", e.g. a report's HTML and images) into ``dest``.

    Returns:
        The local path of ``uri``'s own object.

    Raises:
        StorageError: ``uri`` is malformed, the folder is empty, or a transfer failed.
    """
    location = parse_s3_uri(uri)
    folder, _, file_name = location.key.rpartition("/")
    download_prefix(client, S3Location(location.bucket, folder), dest)
    return dest / file_name


def _local_copy_current(client: S3Client, source: S3Location, target: Path, size: int) -> bool:
    if not target.is_file() or target.stat().st_size != size:
        return False
    info = head_object(client, source)
    return info is not None and info.sha256 is not None and info.sha256 == sha256_file(target)
