"""Build and push the runtime image with buildah, tagged by the content hash of its recipe; skip if pushed."""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelpipe.build_context import context_tag
from modelpipe.errors import BuildError, ConfigError
from modelpipe.images import PinnedImage, is_digest, parse_pinned_image, validate_repository
from modelpipe.redaction import redact, register_secret

log = logging.getLogger(__name__)

STORAGE_DRIVERS: tuple[str, ...] = ("vfs", "overlay")
# Registry answers meaning "this tag (or repository) does not exist yet": build it.
_NOT_FOUND_MARKERS: tuple[str, ...] = ("manifest unknown", "name unknown", "not found")
# Quay and others answer "unauthorized" for repositories that do not exist yet; the push will tell.
_DENIED_MARKERS: tuple[str, ...] = ("unauthorized", "denied", "authentication required")
_TAIL_LINES = 15


@dataclass(frozen=True)
class BuildResult:
    """A pushed runtime image.

    Attributes:
        image_url: ``REPO:TAG`` as pushed.
        image_digest: Manifest digest ``sha256:...`` in the registry.
        tag: The content-hash tag.
        skipped: True when the tag already existed and nothing was built or pushed.
        seconds: Wall time of the step.
    """

    image_url: str
    image_digest: str
    tag: str
    skipped: bool
    seconds: float

    @property
    def image_ref(self) -> str:
        """``REPO@sha256:...``: the exact reference to deploy."""
        repo = self.image_url.rsplit(":", 1)[0] if self.tag else self.image_url
        return PinnedImage(repo, self.image_digest).ref


def validate_image_repo(image: str) -> str:
    """Return ``image`` if it is a repository without tag or digest (``--image``).

    Raises:
        ConfigError: It carries a tag/digest, a scheme, or is not a valid repository name.
    """
    return validate_repository(image, "--image")


def load_authfile(path: Path) -> Path:
    """Check a docker config file is readable JSON and mark every credential in it as secret.

    Raises:
        ConfigError: The file is missing or not a JSON object.
    """
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(
            f"registry auth file {path} does not exist",
            fix="pass --authfile, REGISTRY_AUTH_FILE or DOCKER_CONFIG pointing at a docker config.json",
        ) from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"registry auth file {path} is not a readable JSON docker config ({type(err).__name__})",
            fix="write it with `buildah login --authfile PATH` or `docker login`",
        ) from err
    if not isinstance(config, dict):
        raise ConfigError(f"registry auth file {path} is not a JSON object", fix="use a docker config.json")
    for entry in (config.get("auths") or {}).values():
        if not isinstance(entry, dict):
            continue
        for key in ("auth", "password", "identitytoken", "registrytoken"):
            register_secret(entry.get(key))
        try:
            decoded = base64.b64decode(entry.get("auth") or "", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
        register_secret(decoded.partition(":")[2])
    return path


def _tls_flag(tls_verify: bool) -> str:
    return f"--tls-verify={'true' if tls_verify else 'false'}"


def inspect_digest(ref: str, *, tls_verify: bool, authfile: Path | None) -> str | None:
    """Manifest digest of ``ref`` in its registry, or None when the tag does not exist.

    Raises:
        BuildError: The registry cannot be reached or answers with an unexpected error.
    """
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise BuildError("skopeo is not installed", fix="install skopeo (make system-tools)")
    command = [skopeo, "inspect", "--raw", _tls_flag(tls_verify)]
    if authfile is not None:
        command += ["--authfile", str(authfile)]
    command.append(f"docker://{ref}")
    completed = subprocess.run(command, capture_output=True, check=False)
    if completed.returncode == 0:
        return "sha256:" + hashlib.sha256(completed.stdout).hexdigest()
    stderr = redact(completed.stderr.decode(errors="replace").strip())
    # Match on skopeo's words only: the echoed reference (host, port, repository) could contain them.
    lowered = stderr.replace(ref, "").lower()
    if any(marker in lowered for marker in _NOT_FOUND_MARKERS):
        return None
    if any(marker in lowered for marker in _DENIED_MARKERS):
        log.warning("registry refused to show %s (%s); building and pushing it", ref, stderr.splitlines()[-1])
        return None
    raise BuildError(
        f"cannot check whether {ref} exists: {stderr.splitlines()[-1] if stderr else 'skopeo failed'}",
        fix="check the registry host/port, --tls-verify and the auth file",
    )


def _run_logged(command: Sequence[str], *, what: str) -> None:
    """Run a buildah command, streaming its output to the log; on failure raise with its last lines."""
    log.debug("running %s", " ".join(command))
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout or ():
            line = line.rstrip()
            tail.append(line)
            log.info("buildah: %s", line)
    if proc.returncode != 0:
        details = redact(" | ".join(tail)) or "no output"
        raise BuildError(
            f"buildah {what} failed (exit {proc.returncode}): {details}",
            fix="read the buildah output above; check the Containerfile, base image access and credentials",
        )


def _global_flags(storage_driver: str, storage_root: Path | None) -> list[str]:
    flags = ["--storage-driver", storage_driver]
    if storage_root is not None:
        flags = ["--root", str(storage_root / "storage"), "--runroot", str(storage_root / "run"), *flags]
    return flags


def _build_and_push(
    *,
    ref: str,
    context: Path,
    containerfile: Path,
    build_args: Mapping[str, str],
    tls_verify: bool,
    storage_driver: str,
    authfile: Path | None,
    storage_root: Path | None,
    no_cache: bool,
) -> str:
    buildah = shutil.which("buildah")
    if buildah is None:
        raise BuildError("buildah is not installed", fix="install buildah (make system-tools)")
    common = [buildah, *_global_flags(storage_driver, storage_root)]
    auth = ["--authfile", str(authfile)] if authfile is not None else []
    arg_flags = [flag for key in sorted(build_args) for flag in ("--build-arg", f"{key}={build_args[key]}")]
    # buildah's layer cache reuses LABEL/ENV steps that expand an ARG even when the ARG's value changed
    # (containers/buildah#5501, seen with 1.28); --no-cache rebuilds every step and refreshes the cache.
    cache = ["--no-cache"] if no_cache else []
    _run_logged(
        [*common, "bud", "--isolation", "chroot", "--layers", *cache, _tls_flag(tls_verify), *auth,
         "-f", str(containerfile), "-t", ref, *arg_flags, str(context)],
        what="build",
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="modelpipe-build-") as tmp:
        digestfile = Path(tmp) / "digest"
        _run_logged(
            [
                *common,
                "push",
                _tls_flag(tls_verify),
                *auth,
                "--digestfile",
                str(digestfile),
                ref,
                f"docker://{ref}",
            ],
            what="push",
        )
        digest = digestfile.read_text(encoding="utf-8").strip()
    if not is_digest(digest):
        raise BuildError(f"buildah push wrote an unexpected digest {digest!r} for {ref}")
    return digest


def use_prebuilt_image(ref: str) -> BuildResult | None:
    """The runtime image to record and deploy when a run does not build one.

    Args:
        ref: ``REPO@sha256:...`` (pinned, so what gets deployed is exactly what was tested), or empty to
            leave the choice to the ServingRuntime's own image.

    Returns:
        The image as a result (``skipped=True``), or None for an empty ``ref``.

    Raises:
        ConfigError: ``ref`` is not pinned by digest.
    """
    ref = ref.strip()
    if not ref:
        return None
    image = parse_pinned_image(ref, "--prebuilt-image")
    return BuildResult(
        image_url=image.repository, image_digest=image.digest, tag="", skipped=True, seconds=0.0
    )


def build_runtime(
    *,
    context: Path,
    image: str,
    containerfile: Path | None = None,
    build_args: Mapping[str, str] | None = None,
    tls_verify: bool = True,
    storage_driver: str = "vfs",
    authfile: Path | None = None,
    storage_root: Path | None = None,
    no_cache: bool = False,
) -> BuildResult:
    """Build ``image`` from ``context`` with buildah and push it, unless its content-hash tag exists.

    Args:
        context: Build context folder (.containerignore/.dockerignore honoured for the tag, as buildah does).
        image: Repository without tag, e.g. ``quay.io/org/diffusers-runtime``.
        containerfile: Defaults to ``context/Containerfile``.
        build_args: ``--build-arg`` values; part of the tag.
        tls_verify: Verify the registry's TLS certificate (False for a plain-HTTP loopback registry).
        storage_driver: buildah storage driver (``vfs`` works unprivileged in pods).
        authfile: Docker config file with registry credentials.
        storage_root: Optional buildah storage root (``--root``/``--runroot`` below it).
        no_cache: Rebuild every step instead of reusing buildah's layer cache (still stored for later).

    Returns:
        The image URL ``REPO:TAG``, its digest, and whether the build was skipped.

    Raises:
        ConfigError: Bad image name, context, Containerfile, storage driver or auth file.
        BuildError: skopeo cannot reach the registry, or buildah fails to build or push.
    """
    started = time.monotonic()
    validate_image_repo(image)
    if storage_driver not in STORAGE_DRIVERS:
        raise ConfigError(
            f"--storage-driver {storage_driver!r} unsupported", fix=f"use one of {STORAGE_DRIVERS}"
        )
    if not context.is_dir():
        raise ConfigError(f"build context {context} is not a folder", fix="pass --context DIR")
    containerfile = containerfile or context / "Containerfile"
    if not containerfile.is_file():
        raise ConfigError(f"Containerfile {containerfile} does not exist", fix="pass --containerfile PATH")
    if authfile is not None:
        load_authfile(authfile)
    args = dict(build_args or {})
    tag = context_tag(context, containerfile, args)
    ref = f"{image}:{tag}"
    existing = inspect_digest(ref, tls_verify=tls_verify, authfile=authfile)
    if existing is not None:
        log.info("%s already in the registry (%s): nothing to build", ref, existing)
        return BuildResult(ref, existing, tag, skipped=True, seconds=time.monotonic() - started)
    log.info("building %s from %s", ref, context)
    digest = _build_and_push(
        ref=ref,
        context=context,
        containerfile=containerfile,
        build_args=args,
        tls_verify=tls_verify,
        storage_driver=storage_driver,
        authfile=authfile,
        storage_root=storage_root,
        no_cache=no_cache,
    )
    seconds = time.monotonic() - started
    log.info("pushed %s@%s in %.1f s", ref, digest, seconds)
    return BuildResult(ref, digest, tag, skipped=False, seconds=seconds)
