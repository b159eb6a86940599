"""hadolint accepts runtime/Containerfile and rejects a copy with a floating base image."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.tools import REPO_ROOT, require_tool

pytestmark = pytest.mark.integration


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("hadolint"), "--no-color", str(path)],
        check=False,
        capture_output=True,
        text=True,
    )


def test_hadolint_clean() -> None:
    result = _hadolint(REPO_ROOT / "runtime" / "Containerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_base(tmp_path: Path) -> None:
    broken = tmp_path / "Containerfile"
    text = (REPO_ROOT / "runtime" / "Containerfile").read_text(encoding="utf-8")
    broken.write_text(text.replace("FROM ${BASE_IMAGE}", "FROM python"), encoding="utf-8")
    assert _hadolint(broken).returncode != 0
