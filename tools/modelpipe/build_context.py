"""A container build context: its content hash (honouring .containerignore like buildah) and base images."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILES: tuple[str, ...] = (".containerignore", ".dockerignore")
# Bump when the hashed fields change so old tags are never reused for a different recipe.
_HASH_SCHEME = b"modelpipe-build-context-v1\0"
TAG_PREFIX = "ctx-"
TAG_HEX_CHARS = 24


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    negated: bool


def _translate(pattern: str) -> re.Pattern[str]:
    """Regex for one ignore pattern with Go filepath.Match syntax plus ``**`` (moby patternmatcher rules)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                    out.append("(.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                out.append("[^" + body[1:] + "]" if body[:1] in ("!", "^") else "[" + body + "]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def read_ignore_patterns(context: Path) -> list[_Pattern]:
    """Patterns from the context's .containerignore (preferred, as buildah does) or .dockerignore."""
    for name in IGNORE_FILES:
        path = context / name
        if path.is_file():
            break
    else:
        return []
    patterns = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:].strip()
        cleaned = os.path.normpath(line).lstrip("/")
        if cleaned in ("", "."):
            continue
        patterns.append(_Pattern(_translate(cleaned), negated))
    return patterns


def is_ignored(relpath: str, patterns: list[_Pattern]) -> bool:
    """True when the last pattern matching ``relpath`` or one of its parent folders excludes it."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        if any(pattern.regex.match(candidate) for candidate in candidates):
            ignored = not pattern.negated
    return ignored


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def context_digest(context: Path, containerfile: Path, build_args: Mapping[str, str]) -> str:
    """Hex sha256 over the context's included entries, the Containerfile bytes and the build args.

    Each entry contributes its kind, relative path, permission bits and content (symlinks: their target),
    in sorted path order, so the same tree gives the same digest on any machine.
    """
    patterns = read_ignore_patterns(context)
    can_prune = not any(p.negated for p in patterns)
    entries: list[tuple[str, bytes]] = []
    for root, dirs, files in os.walk(context):
        rel_root = Path(root).relative_to(context).as_posix()
        kept_dirs = []
        for name in sorted(dirs):
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            full = Path(root, name)
            if is_ignored(rel, patterns):
                if not can_prune and not full.is_symlink():
                    kept_dirs.append(name)  # an ``!`` pattern may re-include something below
                continue
            if full.is_symlink():
                entries.append((rel, b"l\0" + os.readlink(full).encode()))
                continue
            mode = stat.S_IMODE(full.lstat().st_mode)
            entries.append((rel, b"d\0" + f"{mode:o}".encode()))
            kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in files:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if is_ignored(rel, patterns):
                continue
            full = Path(root, name)
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries.append((rel, b"l\0" + os.readlink(full).encode()))
            else:
                mode = stat.S_IMODE(info.st_mode)
                entries.append((rel, b"f\0" + f"{mode:o}".encode() + b"\0" + _file_digest(full)))
    digest = hashlib.sha256(_HASH_SCHEME)
    for rel, record in sorted(entries):
        digest.update(rel.encode() + b"\0" + record + b"\n")
    digest.update(b"containerfile\0" + _file_digest(containerfile) + b"\n")
    for key in sorted(build_args):
        digest.update(f"arg\0{key}\0{build_args[key]}\n".encode())
    return digest.hexdigest()


def context_tag(context: Path, containerfile: Path, build_args: Mapping[str, str]) -> str:
    """Image tag naming this exact build recipe: ``ctx-`` plus the first 24 hex chars of its digest."""
    return TAG_PREFIX + context_digest(context, containerfile, build_args)[:TAG_HEX_CHARS]


def base_images(containerfile: str) -> list[str]:
    """External images a Containerfile starts FROM (ARG defaults filled in; stages and scratch left out)."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases = []
    for line in containerfile.splitlines():
        arg = re.match(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line)
        if arg:
            args.setdefault(arg.group(1), arg.group(2).strip("\"'"))
            continue
        start = re.match(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if not start:
            continue
        image = re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), start.group(1)
        )
        if image != "scratch" and image not in stages:
            bases.append(image)
        if start.group(2):
            stages.add(start.group(2))
    return bases
