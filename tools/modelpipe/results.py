"""Tekton results: each value is written as a file named after the result, holding the exact value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from modelpipe.redaction import redact

# Tekton packs all results of a task pod into one 4096-byte termination message; keep well below.
MAX_TOTAL_RESULT_BYTES = 3072
_RESULT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def write_results(results_dir: Path, values: Mapping[str, str]) -> None:
    """Write each result to ``results_dir/NAME`` with no trailing newline.

    Raises:
        ValueError: A name is not UPPER_SNAKE or the values together exceed the Tekton size budget.
    """
    total = 0
    for name, value in values.items():
        if not _RESULT_NAME.match(name):
            raise ValueError(f"result name {name!r} must be UPPER_SNAKE_CASE")
        total += len(value.encode())
    if total > MAX_TOTAL_RESULT_BYTES:
        raise ValueError(f"results total {total} bytes, over the {MAX_TOTAL_RESULT_BYTES}-byte budget")
    results_dir.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (results_dir / name).write_text(redact(value), encoding="utf-8")
