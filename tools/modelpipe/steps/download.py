"""download-model: fetch what a diffusers pipeline or a language model needs, verified, manifest last."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# huggingface_hub raises transport failures as httpx2 exceptions (its HTTP client), so we catch those too.
import httpx2
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from pydantic import SecretStr
from tqdm import tqdm

from modelpipe.config import HF_ENDPOINT, HF_TOKEN
from modelpipe.errors import (
    ChecksumMismatchError,
    InvalidSourceError,
    ManifestError,
    ModelKindError,
    NotADiffusersModelError,
    SourceUnavailableError,
)
from modelpipe.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestFile,
    build_manifest,
    files_digest,
    manifest_sha256,
    read_manifest,
    sha256_file,
    write_manifest,
)
from modelpipe.model_files import MODEL_INDEX, read_components, select_files
from modelpipe.model_kinds import (
    CONFIG,
    DEFAULT_MODEL_KIND,
    SAFETENSORS_INDEX,
    TEXT_GENERATION,
    ModelKind,
    check_language_model_config,
    read_config,
    refuse_other_kind,
    select_language_model_files,
)
from modelpipe.progress import LOG_EVERY_SECONDS
from modelpipe.redaction import register_secret
from modelpipe.sources import HubSource, LocalSource

log = logging.getLogger(__name__)

_DOWNLOAD_WORKERS = 4
_CHUNK_BYTES = 8 * 1024 * 1024
_LOG_PROGRESS_MIN_BYTES = 64 * 1024 * 1024
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class DownloadResult:
    """What download-model produced.

    Attributes:
        model_dir: The destination folder.
        source: ``hf://ORG/REPO`` or ``file:///DIR``.
        revision: Commit sha (hub) or the file-list digest (file://); the SOURCE_REVISION result.
        manifest_path: ``model_dir/manifest.json``.
        manifest_sha256: sha256 of manifest.json's bytes.
        total_bytes: Sum of the model's file sizes.
        files: Number of files in the manifest.
        bytes_fetched: Bytes downloaded or copied in this run.
        bytes_reused: Bytes already present and verified in ``model_dir``.
        seconds: Wall time.
        model_kind: ``text-to-image`` or ``text-generation``, as recorded in the manifest.
    """

    model_dir: Path
    source: str
    revision: str
    manifest_path: Path
    manifest_sha256: str
    total_bytes: int
    files: int
    bytes_fetched: int
    bytes_reused: int
    seconds: float
    model_kind: ModelKind = DEFAULT_MODEL_KIND


@dataclass(frozen=True)
class _Expected:
    """What a Hub file must be: size plus the LFS sha256 or, for small files, the git blob sha1."""

    size: int
    lfs_sha256: str | None
    git_sha1: str | None


# --- the step --------------------------------------------------------------------------------------------


def download_model(
    *,
    source: HubSource | LocalSource,
    dest: Path,
    variant: str | None = None,
    token: SecretStr | None = None,
    endpoint: str | None = None,
    model_kind: ModelKind = DEFAULT_MODEL_KIND,
) -> DownloadResult:
    """Fetch a diffusers pipeline or a language model into ``dest`` and write ``dest/manifest.json`` last.

    A text-to-image model is a diffusers pipeline (model_index.json, its components' configs and one
    weight set each); a text-generation model is a transformers causal LM (config.json, generation config,
    tokenizer files, chat template, safetensors weights with their index). Nothing else is fetched.

    Re-runs are cheap: files already in ``dest`` with the expected size and hash are kept, and an unchanged
    manifest is left byte-for-byte as it was (so MANIFEST_SHA256 is stable).

    Args:
        source: From :func:`parse_source`.
        dest: Destination folder (created if needed).
        variant: Preferred weight variant, e.g. ``fp16``.
        token: Hugging Face token (HF_TOKEN) for gated or private repositories.
        endpoint: Hub URL (HF_ENDPOINT) for mirrors; None for huggingface.co.
        model_kind: What the source must be; a model of the other kind is refused before any weight
            is fetched.

    Raises:
        InvalidSourceError: Repository, revision or folder not found.
        ModelKindError: The source is a model of the other kind, or a language model without config,
            tokenizer or safetensors weights.
        NotADiffusersModelError: A text-to-image source is not a diffusers pipeline.
        SourceUnavailableError: The Hub could not be reached or a file could not be fetched.
        ChecksumMismatchError: A fetched file does not match what the source says it is.
    """
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    previous = _previous_manifest(dest)
    if isinstance(source, HubSource):
        revision, files, fetched = _download_from_hub(source, dest, variant, token, endpoint, model_kind)
    else:
        files, fetched = _copy_from_folder(source.path, dest, variant, model_kind)
        revision = files_digest(files)
    manifest = build_manifest(
        source=source.uri, revision=revision, files=files, variant=variant, model_kind=model_kind
    )
    if previous is not None and _same_content(previous, manifest):
        manifest = previous
    path = write_manifest(dest, manifest)
    log.info("wrote %s: %d files, %d bytes, revision %s", path, len(files), manifest.total_size, revision)
    return DownloadResult(
        model_dir=dest,
        source=source.uri,
        revision=revision,
        manifest_path=path,
        manifest_sha256=manifest_sha256(path),
        total_bytes=manifest.total_size,
        files=len(files),
        bytes_fetched=fetched,
        bytes_reused=manifest.total_size - fetched,
        seconds=time.monotonic() - started,
        model_kind=model_kind,
    )


def _previous_manifest(dest: Path) -> Manifest | None:
    """The manifest an earlier run left, or None (a missing or unreadable one is simply rewritten)."""
    try:
        return read_manifest(dest / MANIFEST_NAME)
    except ManifestError:
        return None


def _invalidate_manifest(dest: Path) -> None:
    """Called before any file in ``dest`` changes: no manifest may vouch for a folder being changed."""
    (dest / MANIFEST_NAME).unlink(missing_ok=True)


def _same_content(previous: Manifest, current: Manifest) -> bool:
    return previous.model_dump(exclude={"created"}) == current.model_dump(exclude={"created"})


def _hashes(path: Path, *, git_sha1: bool) -> tuple[str, str | None]:
    """sha256 and (optionally) git blob sha1 of a file in one read."""
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {path.stat().st_size}\0".encode()) if git_sha1 else None
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            sha256.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
    return sha256.hexdigest(), (sha1.hexdigest() if sha1 is not None else None)


def _matching_sha256(path: Path, expected: _Expected) -> str | None:
    """The file's sha256 if it has the expected size and hash, else None."""
    if not path.is_file() or path.stat().st_size != expected.size:
        return None
    sha256, sha1 = _hashes(path, git_sha1=expected.lfs_sha256 is None and expected.git_sha1 is not None)
    if expected.lfs_sha256 is not None:
        return sha256 if sha256 == expected.lfs_sha256 else None
    if expected.git_sha1 is not None:
        return sha256 if sha1 == expected.git_sha1 else None
    return sha256


# --- Hugging Face Hub ------------------------------------------------------------------------------------


class _LogLines:
    """A file-like sink that turns tqdm's status lines into INFO log records."""

    def write(self, text: str) -> None:
        line = _ANSI_ESCAPE.sub("", text).strip("\r\n ")
        if line:
            log.info("%s", line)

    def flush(self) -> None:
        return None


class _HubProgress(tqdm):  # type: ignore[type-arg]
    """huggingface_hub's per-file bars on a terminal; in pods (no TTY) a log line every few seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not sys.stderr.isatty():
            # Small files get our one "fetched" line; large ones a progress line every few seconds.
            small = (kwargs.get("total") or 0) < _LOG_PROGRESS_MIN_BYTES
            kwargs.update(file=_LogLines(), mininterval=LOG_EVERY_SECONDS, ascii=True, disable=small)
        super().__init__(*args, **kwargs)


def _download_from_hub(
    source: HubSource,
    dest: Path,
    variant: str | None,
    token: SecretStr | None,
    endpoint: str | None,
    model_kind: ModelKind,
) -> tuple[str, list[ManifestFile], int]:
    secret = token.get_secret_value() if token else None
    register_secret(secret)
    api = HfApi(endpoint=endpoint, token=secret)
    with _hub_errors(source):
        info = api.model_info(source.repo_id, revision=source.revision, files_metadata=True)
    sha = info.sha
    if not sha:
        raise SourceUnavailableError(f"the Hub returned no commit sha for {source.uri}@{source.revision}")
    expected = {
        s.rfilename: _Expected(
            size=int(s.size or 0), lfs_sha256=s.lfs.sha256 if s.lfs else None, git_sha1=s.blob_id or None
        )
        for s in info.siblings or []
    }
    log.info(
        "%s@%s is commit %s (%d files in the repository)", source.uri, source.revision, sha, len(expected)
    )
    where = f"{source.uri}@{sha[:12]}"
    refuse_other_kind(where, model_kind, expected)

    def fetch(rel: str) -> tuple[ManifestFile, int]:
        return _fetch_hub_file(source, sha, rel, expected[rel], dest, secret, endpoint)

    if model_kind == TEXT_GENERATION:
        results = _place_language_model(where, list(expected), dest, fetch)
        _remove_download_bookkeeping(dest)
        return sha, [entry for entry, _ in results], sum(fetched for _, fetched in results)
    if MODEL_INDEX not in expected:
        raise NotADiffusersModelError(
            f"{where} has no {MODEL_INDEX}: not a diffusers pipeline",
            fix="use a diffusers-format repository (model_index.json, unet/, vae/, ...)",
        )
    index_entry, index_fetched = fetch(MODEL_INDEX)
    selected = select_files(expected, read_components(dest / MODEL_INDEX), variant=variant)
    with ThreadPoolExecutor(max_workers=_DOWNLOAD_WORKERS) as pool:
        results = [(index_entry, index_fetched), *pool.map(fetch, selected[1:])]
    _remove_download_bookkeeping(dest)
    return sha, [entry for entry, _ in results], sum(fetched for _, fetched in results)


def _fetch_hub_file(
    source: HubSource,
    sha: str,
    rel: str,
    expected: _Expected,
    dest: Path,
    token: str | None,
    endpoint: str | None,
) -> tuple[ManifestFile, int]:
    target = dest / rel
    digest = _matching_sha256(target, expected)
    if digest is not None:
        log.debug("kept %s (%d bytes, verified)", rel, expected.size)
        return ManifestFile(path=rel, size=expected.size, sha256=digest), 0
    _invalidate_manifest(dest)
    with _hub_errors(source, rel):
        hf_hub_download(
            source.repo_id,
            rel,
            revision=sha,
            local_dir=dest,
            token=token,
            endpoint=endpoint,
            # A file that exists but failed the check above must be fetched again, not trusted.
            force_download=target.exists(),
            tqdm_class=_HubProgress,
        )
    digest = _matching_sha256(target, expected)
    if digest is None:
        raise ChecksumMismatchError(
            f"{source.uri}@{sha[:12]}: {rel} does not match the size/hash the Hub lists",
            fix="re-run the download; if it repeats the mirror serves a corrupted file",
        )
    log.info("fetched %s (%d bytes)", rel, expected.size)
    return ManifestFile(path=rel, size=expected.size, sha256=digest), expected.size


@contextmanager
def _hub_errors(source: HubSource, rel: str | None = None) -> Iterator[None]:
    """Translate huggingface_hub/httpx2 failures into our known errors (never echoing the token)."""
    try:
        yield
    except (httpx2.HTTPError, OSError) as err:
        raise _hub_error(source, rel, err) from err
    except ValueError as err:
        # force_download=True turns a failed metadata request into "ValueError: Force download failed".
        if isinstance(err.__cause__, httpx2.HTTPError | OSError):
            raise _hub_error(source, rel, err.__cause__) from err
        raise


def _hub_error(source: HubSource, rel: str | None, err: BaseException) -> Exception:
    what = f"{source.uri}@{source.revision}" + (f" file {rel}" if rel else "")
    # hf_hub_download wraps a failed metadata request in LocalEntryNotFoundError; its cause tells what failed.
    if isinstance(err, LocalEntryNotFoundError) and isinstance(err.__cause__, httpx2.HTTPError | OSError):
        err = err.__cause__
    token_fix = f"check the name; set {HF_TOKEN} for gated or private repositories"
    if isinstance(err, GatedRepoError):
        return InvalidSourceError(f"{what}: gated repository, access not granted", fix=token_fix)
    if isinstance(err, RepositoryNotFoundError):
        return InvalidSourceError(f"{what}: repository not found or not accessible", fix=token_fix)
    if isinstance(err, RevisionNotFoundError):
        return InvalidSourceError(
            f"{what}: revision {source.revision!r} not found", fix="use a branch, tag or sha"
        )
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code if err.response is not None else "?"
        return SourceUnavailableError(
            f"{what}: the Hub answered HTTP {status}", fix="re-run; files done are kept"
        )
    return SourceUnavailableError(
        f"{what}: cannot reach the Hub ({type(err).__name__})",
        fix=f"check network access or set {HF_ENDPOINT} to a reachable mirror (file:// needs neither)",
    )


def _remove_download_bookkeeping(dest: Path) -> None:
    """Drop what hf_hub_download(local_dir=...) keeps for resuming, once the folder is complete.

    Only its ``download/`` folder goes, plus its marker files when nothing else is left, and parents only
    when empty: with ``--model-dir ~`` ``.cache/huggingface`` is also the user's Hub cache and token folder.
    """
    bookkeeping = dest / ".cache" / "huggingface"
    shutil.rmtree(bookkeeping / "download", ignore_errors=True)
    markers = {".gitignore", ".gitignore.lock", "CACHEDIR.TAG"}
    if bookkeeping.is_dir() and {p.name for p in bookkeeping.iterdir()} <= markers:
        for name in markers:
            (bookkeeping / name).unlink(missing_ok=True)
    for folder in (bookkeeping, bookkeeping.parent):
        with suppress(OSError):
            folder.rmdir()


# --- language models (either source) ---------------------------------------------------------------------


def _place_language_model(
    where: str, listing: list[str], dest: Path, place: Callable[[str], tuple[ManifestFile, int]]
) -> list[tuple[ManifestFile, int]]:
    """Fetch config.json (and the weight index) first, check they describe a causal LM, then the rest.

    Raises:
        ModelKindError: No config.json, a config that does not generate text, or missing files.
    """
    if CONFIG not in listing:
        raise ModelKindError(
            f"{where} has no {CONFIG}: not a transformers language model",
            fix="use a repository or folder saved with AutoModelForCausalLM.save_pretrained",
        )
    placed = {CONFIG: place(CONFIG)}
    architecture = check_language_model_config(where, read_config(dest / CONFIG))
    weight_index = None
    if SAFETENSORS_INDEX in listing:
        placed[SAFETENSORS_INDEX] = place(SAFETENSORS_INDEX)
        weight_index = read_config(dest / SAFETENSORS_INDEX)
    try:
        selected = select_language_model_files(listing, weight_index)
    except ModelKindError as err:
        raise ModelKindError(f"{where}: {err.message}", fix=err.fix) from err
    rest = [rel for rel in selected if rel not in placed]
    with ThreadPoolExecutor(max_workers=_DOWNLOAD_WORKERS) as pool:
        results = [*placed.values(), *pool.map(place, rest)]
    log.info("%s is a %s language model: %d files selected", where, architecture, len(results))
    return results


# --- local folder (file://) ------------------------------------------------------------------------------


def _list_folder(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel != MANIFEST_NAME and not name.startswith("."):
                found.append(rel)
    return found


def _copy_from_folder(
    src: Path, dest: Path, variant: str | None, model_kind: ModelKind
) -> tuple[list[ManifestFile], int]:
    if not src.is_dir():
        raise InvalidSourceError(f"{src.as_uri()} is not a folder", fix="point --source at a model folder")
    listing = _list_folder(src)
    config = read_config(src / CONFIG) if CONFIG in listing and MODEL_INDEX not in listing else None
    refuse_other_kind(src.as_uri(), model_kind, listing, config)
    in_place = src.resolve() == dest.resolve()

    def place(rel: str) -> tuple[ManifestFile, int]:
        source_file, target = src / rel, dest / rel
        size = source_file.stat().st_size
        if in_place or (target.exists() and os.path.samefile(source_file, target)):
            return ManifestFile(path=rel, size=size, sha256=sha256_file(source_file)), 0
        digest = sha256_file(source_file)
        if target.is_file() and target.stat().st_size == size and sha256_file(target) == digest:
            return ManifestFile(path=rel, size=size, sha256=digest), 0
        _invalidate_manifest(dest)
        _link_or_copy(source_file, target)
        return ManifestFile(path=rel, size=size, sha256=digest), size

    if model_kind == TEXT_GENERATION:
        results = _place_language_model(src.as_uri(), listing, dest, place)
    else:
        if MODEL_INDEX not in listing:
            raise NotADiffusersModelError(
                f"{src.as_uri()} has no {MODEL_INDEX}: not a diffusers pipeline",
                fix="point --source at a folder saved with DiffusionPipeline.save_pretrained",
            )
        selected = select_files(listing, read_components(src / MODEL_INDEX), variant=variant)
        with ThreadPoolExecutor(max_workers=_DOWNLOAD_WORKERS) as pool:
            results = list(pool.map(place, selected))
    fetched = sum(n for _, n in results)
    log.info("imported %d files from %s (%d bytes copied or linked)", len(results), src, fetched)
    return [entry for entry, _ in results], fetched


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link (same filesystem) or copy into a temp name, then rename: no half-written target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
