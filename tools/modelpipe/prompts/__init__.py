"""Benchmark prompt sets: the built-in default set and user prompt files (one prompt per line)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from modelpipe.errors import BenchmarkError

DEFAULT_SET_NAME = "default"
# CLIP's text encoder sees at most 77 tokens; far longer lines are almost surely not prompts.
MAX_PROMPT_CHARS = 1000
_FILE_FIX = "one prompt per line, UTF-8; '#' starts a comment line"


@dataclass(frozen=True)
class Prompts:
    """A parsed prompt set.

    Attributes:
        name: ``default`` for the built-in set, else the file name.
        prompts: The prompts in file order.
    """

    name: str
    prompts: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """sha256 of the prompts joined by newlines (comments and blank lines do not count)."""
        return prompt_set_sha256(self.prompts)


def prompt_set_sha256(prompts: Sequence[str]) -> str:
    """Identity of a prompt set, as recorded in results.json ``prompt_set.sha256``."""
    return hashlib.sha256("\n".join(prompts).encode("utf-8")).hexdigest()


def parse_prompts(text: str, *, source: str) -> list[str]:
    """Parse prompt-file text: one prompt per line, ``#`` comment lines and blank lines skipped.

    Args:
        text: File content.
        source: Name used in error messages (the file path).

    Raises:
        BenchmarkError: No prompts, a prompt over MAX_PROMPT_CHARS, or a prompt repeated (line numbers named).
    """
    prompts: list[str] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = " ".join(raw.split())
        if not line or line.startswith("#"):
            continue
        if len(line) > MAX_PROMPT_CHARS:
            raise BenchmarkError(
                f"prompt file {source} line {number}: prompt has {len(line)} characters, "
                f"over {MAX_PROMPT_CHARS}",
                fix=_FILE_FIX,
            )
        if line in first_line:
            raise BenchmarkError(
                f"prompt file {source} line {number}: repeats the prompt of line {first_line[line]}",
                fix="remove the duplicate; each prompt is scored once",
            )
        first_line[line] = number
        prompts.append(line)
    if not prompts:
        raise BenchmarkError(f"prompt file {source} has no prompts", fix=_FILE_FIX)
    return prompts


def read_prompt_file(path: Path) -> Prompts:
    """Read a prompt file.

    Raises:
        BenchmarkError: The file is missing, unreadable, not UTF-8, or has no valid prompts.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise BenchmarkError(
            f"prompt file {path} not found", fix="pass an existing file to --prompts"
        ) from err
    except IsADirectoryError as err:
        raise BenchmarkError(
            f"prompt file {path} is a directory", fix="pass a text file to --prompts"
        ) from err
    except OSError as err:
        raise BenchmarkError(f"prompt file {path} unreadable: {err.strerror}") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise BenchmarkError(f"prompt file {path} line {line} is not UTF-8", fix=_FILE_FIX) from err
    return Prompts(
        name=path.name, prompts=tuple(parse_prompts(text.removeprefix("\ufeff"), source=str(path)))
    )


def default_prompts() -> Prompts:
    """The built-in set of varied prompts shipped in ``modelpipe/prompts/default.txt``."""
    text = resources.files(__name__).joinpath("default.txt").read_text(encoding="utf-8")
    return Prompts(name=DEFAULT_SET_NAME, prompts=tuple(parse_prompts(text, source="built-in default.txt")))
