"""Model sources (``hf://ORG/REPO[@REV]``, ``file:///DIR``): parsed here once, for every step and script."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from modelpipe.errors import ConfigError, InvalidSourceError

DEFAULT_REVISION = "main"
# The run scripts' shorthand: ``--model ORG/REPO`` means ``hf://ORG/REPO``.
_REPO_SHORTHAND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class HubSource:
    """``hf://ORG/REPO`` at a revision (branch, tag or commit).

    Attributes:
        repo_id: ``ORG/REPO``.
        revision: What to fetch (``main`` unless given).
        pinned: True when the URI or ``--revision`` named the revision (not part of equality).
    """

    repo_id: str
    revision: str = DEFAULT_REVISION
    pinned: bool = field(default=True, compare=False)

    @property
    def uri(self) -> str:
        return f"hf://{self.repo_id}"

    @property
    def name(self) -> str:
        """The repository part: the default registered model name."""
        return self.repo_id.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LocalSource:
    """``file:///ABS/DIR``: a diffusers folder on disk (disconnected clusters, local runs)."""

    path: Path

    @property
    def uri(self) -> str:
        return self.path.as_uri()

    @property
    def name(self) -> str:
        """The folder name: the default registered model name."""
        return self.path.name


ModelSource = HubSource | LocalSource


def parse_source(uri: str, revision: str | None = None) -> ModelSource:
    """Parse ``--source`` (and ``--revision``) into a source.

    Args:
        uri: ``hf://ORG/REPO[@REV]`` or ``file:///ABS/DIR``.
        revision: Branch, tag or commit for an hf:// source; must agree with an ``@REV`` in ``uri``.

    Raises:
        InvalidSourceError: Unknown scheme, a repo id that is not ORG/REPO, or a relative file:// path.
        ConfigError: ``--revision`` contradicts ``@REV`` in the URI, or is given for a file:// source.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "hf":
        repo, _, at_rev = f"{parsed.netloc}{parsed.path}".partition("@")
        repo = repo.strip("/")
        at_rev = at_rev.rstrip("/")
        try:
            validate_repo_id(repo)
            if "/" not in repo:
                raise HFValidationError("no organisation part")
        except HFValidationError as err:
            raise InvalidSourceError(
                f"{uri!r}: {repo!r} is not a valid ORG/REPO repo id", fix="use hf://ORG/REPO"
            ) from err
        if at_rev and revision and at_rev != revision:
            raise ConfigError(f"--revision {revision} contradicts {uri!r}", fix="give the revision once")
        given = at_rev or revision
        return HubSource(repo_id=repo, revision=given or DEFAULT_REVISION, pinned=bool(given))
    if parsed.scheme == "file":
        if revision:
            raise ConfigError("--revision applies to hf:// sources only", fix="drop --revision for file://")
        if parsed.netloc not in {"", "localhost"} or not parsed.path.startswith("/"):
            raise InvalidSourceError(f"{uri!r} is not an absolute file:// URI", fix="use file:///ABS/DIR")
        return LocalSource(path=Path(unquote(parsed.path)))
    raise InvalidSourceError(
        f"{uri!r} has no supported scheme", fix="use hf://ORG/REPO[@REV] or file:///ABS/DIR"
    )


def expand_source(text: str) -> str:
    """The run scripts' ``--model``: ``ORG/REPO`` becomes ``hf://ORG/REPO``; a full URI is kept.

    Raises:
        InvalidSourceError: Neither ``ORG/REPO`` nor a URI.
    """
    if "://" in text:
        return text
    if not _REPO_SHORTHAND.match(text):
        raise InvalidSourceError(
            f"model source {text!r} is not ORG/REPO, hf://ORG/REPO[@REV] or file:///ABS/DIR",
            fix="e.g. stabilityai/sd-turbo",
        )
    return f"hf://{text}"
