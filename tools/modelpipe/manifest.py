"""manifest.json: the list of a model folder's files with sizes and sha256, and the checks built on it."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelpipe.errors import ChecksumMismatchError, ManifestError
from modelpipe.files import write_text_atomic
from modelpipe.model_kinds import DEFAULT_MODEL_KIND, ModelKind

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
_CHUNK_BYTES = 8 * 1024 * 1024
# hashlib releases the GIL on large updates, so a few threads hash several files at once.
_HASH_WORKERS = 4
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

log = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content, read in 8 MiB chunks (the one sha256 helper everything uses)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of an in-memory payload."""
    return hashlib.sha256(data).hexdigest()


class ManifestFile(BaseModel):
    """One file of a model folder.

    Attributes:
        path: POSIX path relative to the model folder (no ``..``, not absolute).
        size: Size in bytes.
        sha256: Lowercase hex sha256 of the content.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    size: int = Field(ge=0)
    sha256: str

    @field_validator("path")
    @classmethod
    def _relative_posix_path(cls, value: str) -> str:
        pure = PurePosixPath(value)
        if not value or "\\" in value or pure.is_absolute() or ".." in pure.parts or str(pure) != value:
            raise ValueError(f"file path {value!r} must be a normalised relative POSIX path")
        if value == MANIFEST_NAME:
            raise ValueError(f"{MANIFEST_NAME} cannot list itself")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not _SHA256.match(value):
            raise ValueError(f"sha256 {value!r} is not 64 lowercase hex characters")
        return value


class Manifest(BaseModel):
    """What ``manifest.json`` records about a downloaded model.

    Attributes:
        schema_version: Format version of this file.
        source: Where the model came from (``hf://ORG/REPO`` or ``file:///DIR``).
        revision: Commit sha for hf:// sources; for file:// the sha256 of the file list
            (see ``files_digest``).
        variant: Weight variant chosen (e.g. ``fp16``), or None.
        model_kind: ``text-to-image`` (a diffusers pipeline) or ``text-generation`` (a causal LM);
            manifests written before kinds existed are text-to-image.
        created: When the manifest was written (UTC).
        files: Every file of the model, sorted by path.
        total_size: Sum of all file sizes in bytes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = MANIFEST_SCHEMA_VERSION
    source: str
    revision: str
    variant: str | None = None
    model_kind: ModelKind = DEFAULT_MODEL_KIND
    created: datetime
    files: tuple[ManifestFile, ...]
    total_size: int

    @model_validator(mode="before")
    @classmethod
    def _fill_total(cls, data: object) -> object:
        if isinstance(data, dict) and "total_size" not in data and "files" in data:
            files = data["files"]
            data = {**data, "total_size": sum(_size_of(item) for item in files)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        paths = [item.path for item in self.files]
        duplicates = sorted({path for path in paths if paths.count(path) > 1})
        if duplicates:
            raise ValueError(f"files listed twice: {', '.join(duplicates)}")
        if sum(item.size for item in self.files) != self.total_size:
            raise ValueError(f"total_size {self.total_size} is not the sum of the file sizes")
        return self

    def file(self, path: str) -> ManifestFile:
        """The entry for ``path``; KeyError when the manifest does not list it."""
        for item in self.files:
            if item.path == path:
                return item
        raise KeyError(path)


def _size_of(item: object) -> int:
    if isinstance(item, ManifestFile):
        return item.size
    if isinstance(item, dict) and isinstance(item.get("size"), int):
        return int(item["size"])
    return 0


def files_digest(files: Iterable[ManifestFile]) -> str:
    """sha256 over the sorted ``path size sha256`` lines: a content identity that ignores timestamps."""
    lines = "".join(
        f"{item.path}\t{item.size}\t{item.sha256}\n" for item in sorted(files, key=lambda f: f.path)
    )
    return sha256_bytes(lines.encode())


def hash_files(model_dir: Path, paths: Sequence[str]) -> tuple[ManifestFile, ...]:
    """Size and sha256 of each relative path under ``model_dir``, sorted by path.

    Raises:
        ManifestError: A listed file does not exist.
    """

    def entry(rel: str) -> ManifestFile:
        path = model_dir / rel
        try:
            size = path.stat().st_size
        except FileNotFoundError as err:
            raise ManifestError(f"cannot hash {path}: file does not exist") from err
        return ManifestFile(path=rel, size=size, sha256=sha256_file(path))

    with ThreadPoolExecutor(max_workers=_HASH_WORKERS) as pool:
        return tuple(sorted(pool.map(entry, paths), key=lambda f: f.path))


def build_manifest(
    *,
    source: str,
    revision: str,
    files: Sequence[ManifestFile],
    variant: str | None = None,
    model_kind: ModelKind = DEFAULT_MODEL_KIND,
    created: datetime | None = None,
) -> Manifest:
    """A Manifest for already-hashed files (total size computed, files sorted)."""
    ordered = tuple(sorted(files, key=lambda f: f.path))
    return Manifest(
        source=source,
        revision=revision,
        variant=variant,
        model_kind=model_kind,
        created=created or datetime.now(UTC),
        files=ordered,
        total_size=sum(item.size for item in ordered),
    )


def manifest_path(path: Path) -> Path:
    """``path`` itself if it names a file, else ``path/manifest.json``."""
    return path / MANIFEST_NAME if path.is_dir() else path


def write_manifest(model_dir: Path, manifest: Manifest) -> Path:
    """Write ``model_dir/manifest.json`` atomically (temp file, fsync, rename) and return its path.

    A reader never sees a half-written manifest: it finds the old file, the new one, or none.
    """
    target = model_dir / MANIFEST_NAME
    write_text_atomic(target, manifest.model_dump_json(indent=2) + "\n")
    return target


def read_manifest(path: Path) -> Manifest:
    """Load and validate a manifest from a file or from a model folder containing ``manifest.json``.

    Raises:
        ManifestError: The file is missing, is not JSON, or does not match the schema.
    """
    target = manifest_path(path)
    try:
        raw = target.read_bytes()
    except FileNotFoundError as err:
        raise ManifestError(
            f"{target} does not exist", fix="run `modelpipe download` first; it writes manifest.json last"
        ) from err
    except OSError as err:
        raise ManifestError(f"cannot read {target}: {err.strerror}") from err
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{target} is not valid JSON ({err})", fix="re-run `modelpipe download`") from err
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc']) or 'manifest'}: {problem['msg']}"
            for problem in err.errors()
        )
        raise ManifestError(
            f"{target} is not a valid manifest: {problems}", fix="re-run `modelpipe download`"
        ) from err


def manifest_sha256(path: Path) -> str:
    """sha256 of the manifest file's bytes (``path`` is the file or its model folder).

    Raises:
        ManifestError: The manifest file does not exist.
    """
    target = manifest_path(path)
    try:
        return sha256_file(target)
    except FileNotFoundError as err:
        raise ManifestError(f"{target} does not exist") from err


def verify_files(model_dir: Path, manifest: Manifest, *, hash_only: Collection[str] | None = None) -> None:
    """Check every listed file exists under ``model_dir`` with the recorded size and sha256.

    Sizes are checked for all files before any hashing, so a truncated file fails fast.

    Args:
        model_dir: Folder the manifest describes.
        manifest: What the folder must hold.
        hash_only: If given, only these paths are hashed (the rest get the existence and size check);
            upload uses it to hash exactly the files it is about to send.

    Raises:
        ChecksumMismatchError: Naming every missing, resized or corrupted file.
    """
    problems: list[str] = []
    to_hash: list[ManifestFile] = []
    for item in manifest.files:
        path = model_dir / item.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            problems.append(f"{item.path} is missing")
            continue
        if size != item.size:
            problems.append(f"{item.path} has {size} bytes, manifest says {item.size}")
        elif hash_only is None or item.path in hash_only:
            to_hash.append(item)
    if problems:
        raise _mismatch(model_dir, problems)
    with ThreadPoolExecutor(max_workers=_HASH_WORKERS) as pool:
        digests = list(pool.map(lambda item: sha256_file(model_dir / item.path), to_hash))
    for item, digest in zip(to_hash, digests, strict=True):
        if digest != item.sha256:
            problems.append(f"{item.path} sha256 {digest[:12]}..., manifest says {item.sha256[:12]}...")
    if problems:
        raise _mismatch(model_dir, problems)
    log.debug("verified %d files (%d hashed) in %s", len(manifest.files), len(to_hash), model_dir)


def _mismatch(model_dir: Path, problems: list[str]) -> ChecksumMismatchError:
    return ChecksumMismatchError(
        f"{model_dir} does not match its manifest: {'; '.join(problems)}",
        fix="re-run `modelpipe download` into this folder to fetch the damaged files again",
    )
