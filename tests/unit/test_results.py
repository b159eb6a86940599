"""Tekton result files: exact values, valid names, size budget, no secrets."""

from pathlib import Path

import pytest
from modelpipe.results import write_results


def test_results_are_written_without_trailing_newline(tmp_path: Path) -> None:
    write_results(tmp_path, {"MODEL_URI": "s3://bucket/model"})
    assert (tmp_path / "MODEL_URI").read_bytes() == b"s3://bucket/model"


def test_result_names_must_be_upper_snake(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="UPPER_SNAKE"):
        write_results(tmp_path, {"model-uri": "x"})


def test_results_over_budget_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="budget"):
        write_results(tmp_path / "out", {"A": "x" * 4000})
    assert not (tmp_path / "out").exists()


def test_secret_values_never_reach_result_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "supersecretvalue")
    write_results(tmp_path, {"ENDPOINT": "http://x?key=supersecretvalue"})
    assert "supersecretvalue" not in (tmp_path / "ENDPOINT").read_text()
