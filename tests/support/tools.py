"""Finding the real tools tests drive; in CI a missing tool fails instead of skipping."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from modelpipe.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# API specs and CRDs the tests validate against, vendored (tests/specs/*/SOURCE.txt says from where).
SPECS_DIR = REPO_ROOT / "tests" / "specs"
VENV_BIN = Path(sys.executable).parent

__all__ = ["REPO_ROOT", "SPECS_DIR", "VENV_BIN", "free_port", "in_ci", "require_tool"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(name: str) -> str:
    """Path of executable ``name`` (PATH or the venv); skip locally, fail in CI when missing."""
    path = shutil.which(name) or shutil.which(name, path=str(VENV_BIN))
    if path is None:
        message = f"{name} is not installed (fix: make setup)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path
