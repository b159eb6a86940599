"""The CLIP model a benchmark scores with, from hf://, s3:// or a folder, and how results record it."""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
from pydantic import SecretStr

from modelpipe.benchmark_schema import ClipModelInfo
from modelpipe.config import S3Settings
from modelpipe.errors import BenchmarkError, InvalidSourceError
from modelpipe.redaction import redact
from modelpipe.sources import HubSource, LocalSource, parse_source

log = logging.getLogger(__name__)

# Weights as safetensors plus configs and tokenizer files; never the duplicate .bin / TF / Flax weights.
CLIP_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]


@contextmanager
def clip_model_dir(
    source: str, *, s3_settings: S3Settings | None, hf_token: SecretStr | None, cache_dir: Path | None
) -> Iterator[tuple[Path, ClipModelInfo]]:
    """A local folder holding the CLIP model named by ``source``, and how to record it."""
    if source.startswith("hf://"):
        yield _download_hf_clip(source, hf_token=hf_token, cache_dir=cache_dir)
    elif source.startswith("s3://"):
        if cache_dir is not None:
            yield _download_s3_clip(source, s3_settings=s3_settings, dest_root=cache_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="modelpipe-clip-") as tmp:
                yield _download_s3_clip(source, s3_settings=s3_settings, dest_root=Path(tmp))
    elif "://" in source and not source.startswith("file://"):
        raise BenchmarkError(
            f"CLIP model source {source!r} has an unsupported scheme",
            fix="pass hf://ORG/REPO[@REV], s3://BUCKET/PREFIX or a local folder",
        )
    else:
        folder = (_local_clip(source) if source.startswith("file://") else Path(source)).resolve()
        yield folder, ClipModelInfo(source=source, id=folder.name or str(folder))


def _local_clip(source: str) -> Path:
    try:
        parsed = parse_source(source)
    except InvalidSourceError as err:
        raise BenchmarkError(f"CLIP model source {source!r}: {err}", fix="use file:///ABS/DIR") from err
    if not isinstance(parsed, LocalSource):
        raise BenchmarkError(f"CLIP model source {source!r} is not a file:// folder")
    return parsed.path


def _download_hf_clip(
    source: str, *, hf_token: SecretStr | None, cache_dir: Path | None
) -> tuple[Path, ClipModelInfo]:
    try:
        hub = parse_source(source)
    except InvalidSourceError as err:
        raise BenchmarkError(f"CLIP model source {source!r} is not hf://ORG/REPO[@REV]") from err
    if not isinstance(hub, HubSource):
        raise BenchmarkError(f"CLIP model source {source!r} is not hf://ORG/REPO[@REV]")
    repo, revision = hub.repo_id, (hub.revision if hub.pinned else None)
    log.info("downloading CLIP model %s", source)
    try:
        folder = snapshot_download(
            repo,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=CLIP_ALLOW_PATTERNS,
            token=hf_token.get_secret_value() if hf_token else None,
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, HFValidationError) as err:
        raise BenchmarkError(
            f"cannot download CLIP model {source}: {type(err).__name__}: {redact(str(err)).splitlines()[0]}",
            fix="check the repo id, revision, HF_TOKEN and Hub access; or pass an s3:// or folder CLIP model",
        ) from err
    path = Path(str(folder))
    resolved = path.name if re.fullmatch(r"[0-9a-f]{40}", path.name) else revision
    return path, ClipModelInfo(source=source, id=repo, revision=resolved)


def _download_s3_clip(
    source: str, *, s3_settings: S3Settings | None, dest_root: Path
) -> tuple[Path, ClipModelInfo]:
    # Imported here: modelpipe.s3 pulls in boto3, which only s3:// sources need.
    from modelpipe.s3 import download_prefix, make_s3_client, parse_s3_uri

    if s3_settings is None:
        raise BenchmarkError(
            f"CLIP model source {source} needs an S3 connection", fix="pass s3_settings (the data connection)"
        )
    location = parse_s3_uri(source)
    dest = dest_root / location.bucket / location.key.strip("/")
    log.info("downloading CLIP model %s", source)
    folder = download_prefix(make_s3_client(s3_settings), location, dest)
    name = location.key.strip("/").rsplit("/", 1)[-1] or location.bucket
    return Path(folder), ClipModelInfo(source=source, id=name)
