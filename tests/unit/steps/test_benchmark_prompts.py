"""Prompt sets: the built-in default and prompt files with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe.errors import BenchmarkError
from modelpipe.prompts import (
    MAX_PROMPT_CHARS,
    default_prompts,
    parse_prompts,
    read_prompt_file,
)


def test_default_set_has_at_least_32_distinct_prompts() -> None:
    prompts = default_prompts()
    assert prompts.name == "default"
    assert len(prompts.prompts) >= 32
    assert len(set(prompts.prompts)) == len(prompts.prompts)
    assert not any(p.startswith("#") for p in prompts.prompts)


def test_default_set_identity_is_stable() -> None:
    assert default_prompts().sha256 == default_prompts().sha256
    assert len(default_prompts().sha256) == 64


def test_comments_blank_lines_and_extra_spaces_are_ignored() -> None:
    text = "\ufeff# header\n\n  a   red\tcube  \r\n# another\na blue sphere\n"
    assert parse_prompts(text.removeprefix("\ufeff"), source="x") == [
        "a red cube",
        "a blue sphere",
    ]


def test_identity_ignores_comments_but_not_prompt_text(tmp_path: Path) -> None:
    plain, commented, changed = (
        tmp_path / "a.txt",
        tmp_path / "b.txt",
        tmp_path / "c.txt",
    )
    plain.write_text("a red cube\na blue sphere\n")
    commented.write_text("# v2\na red cube\n\na blue sphere\n")
    changed.write_text("a red cube\na blue ball\n")
    assert read_prompt_file(plain).sha256 == read_prompt_file(commented).sha256
    assert read_prompt_file(plain).sha256 != read_prompt_file(changed).sha256


def test_file_name_names_the_set(tmp_path: Path) -> None:
    path = tmp_path / "animals.txt"
    path.write_text("a cat\n")
    assert read_prompt_file(path).name == "animals.txt"


def test_utf8_bom_is_not_part_of_the_first_prompt(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes("\ufeffun café\n".encode())
    assert read_prompt_file(path).prompts == ("un café",)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"prompt file .*nope\.txt not found"):
        read_prompt_file(tmp_path / "nope.txt")


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="is a directory"):
        read_prompt_file(tmp_path)


def test_file_without_prompts_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("# only a comment\n\n")
    with pytest.raises(BenchmarkError, match="has no prompts"):
        read_prompt_file(path)


def test_non_utf8_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes(b"a cat\na dog\ncaf\xe9 latte\n")
    with pytest.raises(BenchmarkError, match="line 3 is not UTF-8"):
        read_prompt_file(path)


def test_duplicate_prompt_names_both_lines() -> None:
    with pytest.raises(BenchmarkError, match="line 4: repeats the prompt of line 1"):
        parse_prompts("a cat\na dog\n# c\na  cat\n", source="p.txt")


def test_overlong_prompt_is_refused() -> None:
    with pytest.raises(BenchmarkError, match=f"line 2: prompt has {MAX_PROMPT_CHARS + 1} characters"):
        parse_prompts("ok\n" + "x" * (MAX_PROMPT_CHARS + 1), source="p.txt")
