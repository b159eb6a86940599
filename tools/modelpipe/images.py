"""Container image references: a repository name and "pinned by digest", checked here for every step."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelpipe.errors import ConfigError

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# The distribution spec's repository grammar: optional registry host[:port], lowercase path components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*$")
PINNED_FIX = "pass REPO@sha256:<64 hex> (the build step's IMAGE_REF, or skopeo inspect's Digest)"


@dataclass(frozen=True)
class PinnedImage:
    """An image by repository and manifest digest: what gets deployed is exactly what was tested.

    Attributes:
        repository: ``registry/org/name`` without tag or digest.
        digest: ``sha256:<64 hex>``.
    """

    repository: str
    digest: str

    @property
    def ref(self) -> str:
        """``REPO@sha256:...``."""
        return f"{self.repository}@{self.digest}"


def is_digest(value: str) -> bool:
    """True for a manifest digest ``sha256:<64 lowercase hex>``."""
    return _DIGEST.match(value) is not None


def validate_repository(image: str, flag: str = "--image") -> str:
    """Return ``image`` if it is a repository without tag or digest.

    Raises:
        ConfigError: It carries a tag/digest, a scheme, or is not a valid repository name.
    """
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        raise ConfigError(
            f"{flag} {image!r} must be a repository without tag or digest",
            fix="drop the ':TAG' / '@sha256:...' part; the tag is computed from the build context",
        )
    if "://" in image or not _REPOSITORY.match(image):
        raise ConfigError(
            f"{flag} {image!r} is not a valid image repository",
            fix="use e.g. quay.io/ORG/diffusers-runtime (lowercase, no scheme)",
        )
    return image


def parse_pinned_image(ref: str, flag: str = "--runtime-image") -> PinnedImage:
    """Split ``REPO@sha256:...`` into repository and digest.

    Raises:
        ConfigError: ``ref`` is not pinned by digest, or its repository is malformed.
    """
    repository, sep, digest = ref.strip().partition("@")
    if not sep or not is_digest(digest):
        raise ConfigError(f"{flag} {ref!r} is not pinned by digest", fix=PINNED_FIX)
    validate_repository(repository, flag)
    return PinnedImage(repository, digest)
