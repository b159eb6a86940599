"""`modelpipe upload` CLI in-process with the step patched: arguments, results, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelpipe.cli import main
from modelpipe.cli import upload as upload_cli
from modelpipe.s3 import MIB, S3Location
from modelpipe.steps.upload import UploadResult
from modelpipe.uploads import UploadConfig

ENV = {
    "AWS_S3_ENDPOINT": "http://127.0.0.1:1",
    "AWS_ACCESS_KEY_ID": "AKIDUNITTEST",
    "AWS_SECRET_ACCESS_KEY": "unit-secret-value-123",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = []

    def step(**kwargs: Any) -> UploadResult:
        recorded.append(kwargs)
        return UploadResult("s3://models/tiny", 100, 20, 2, 3, 0.5)

    monkeypatch.setattr(upload_cli, "upload_model", step)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return recorded


def test_flags_reach_the_step(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    argv = ["upload", "--model-dir", str(tmp_path), "--model-uri", "s3://models/tiny/"]
    assert (
        main([*argv, "--max-concurrency", "3", "--chunk-size-mb", "8", "--single-request-max-mb", "64"]) == 0
    )
    assert main([*argv, "--single-request-max-mb", ""]) == 0
    (call, default) = calls
    assert call["src"] == tmp_path and call["dest"] == S3Location("models", "tiny")
    assert call["config"] == UploadConfig(max_concurrency=3, part_size=8 * MIB, single_request_max=64 * MIB)
    assert default["config"].single_request_max is None, "empty means: chosen from the link"
    assert call["client"].meta.endpoint_url == "http://127.0.0.1:1"


def test_results_written_and_bytes_printed(
    calls: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "upload",
        "--model-dir",
        str(tmp_path),
        "--model-uri",
        "s3://models/tiny",
        "--results-dir",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0
    assert {p.name: p.read_text() for p in (tmp_path / "r").iterdir()} == {
        "MODEL_URI": "s3://models/tiny",
        "BYTES_SENT": "100",
        "BYTES_SKIPPED": "20",
    }
    out = capsys.readouterr().out
    assert "BYTES_SENT: 100" in out and "BYTES_SKIPPED: 20" in out


def test_non_s3_dest_exits_1_without_calling_the_step(
    calls: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["upload", "--model-dir", str(tmp_path), "--model-uri", "models/tiny"]) == 1
    assert calls == [] and "not an s3:// URI" in capsys.readouterr().err


def test_missing_secret_exits_1_naming_the_variable(
    calls: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert main(["upload", "--model-dir", str(tmp_path), "--model-uri", "s3://models/tiny"]) == 1
    assert calls == [] and "AWS_SECRET_ACCESS_KEY not set" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--max-concurrency", "0"), ("--chunk-size-mb", "4"), ("--single-request-max-mb", "0")],
)
def test_out_of_range_transfer_flag_exits_1_naming_it(
    calls: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
) -> None:
    argv = ["upload", "--model-dir", str(tmp_path), "--model-uri", "s3://models/tiny", flag, value]
    assert main(argv) == 1
    assert calls == [] and f"{flag} {value} is below" in capsys.readouterr().err


def test_src_that_is_not_a_folder_exits_1(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    assert main(["upload", "--model-dir", str(tmp_path / "nope"), "--model-uri", "s3://models/tiny"]) == 1
    assert calls == []


def test_missing_dest_is_a_usage_error(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["upload", "--model-dir", str(tmp_path)])
    assert excinfo.value.code == 2


def test_folder_without_manifest_exits_1_naming_it_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    # The real step: it must stop at the missing manifest, before any request to the (closed) endpoint.
    assert main(["upload", "--model-dir", str(tmp_path), "--model-uri", "s3://models/tiny"]) == 1
    err = capsys.readouterr().err
    assert "manifest.json does not exist" in err and "run `modelpipe download` first" in err
    assert ENV["AWS_SECRET_ACCESS_KEY"] not in err and "Traceback" not in err
