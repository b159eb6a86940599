"""`modelpipe download` CLI in-process with the step patched: arguments, results, exit codes, no secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelpipe.cli import download as download_cli
from modelpipe.cli import main
from modelpipe.errors import NotADiffusersModelError
from modelpipe.sources import HubSource, LocalSource
from modelpipe.steps.download import DownloadResult

TOKEN = "hf_secret_token_value_123456"


class StepSpy:
    def __init__(self, result: DownloadResult | None = None, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.result, self.error = result, error

    def __call__(self, **kwargs: Any) -> DownloadResult:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _result(dest: Path) -> DownloadResult:
    return DownloadResult(
        model_dir=dest,
        source="hf://org/repo",
        revision="a" * 40,
        manifest_path=dest / "manifest.json",
        manifest_sha256="b" * 64,
        total_bytes=1234,
        files=7,
        bytes_fetched=1000,
        bytes_reused=234,
        seconds=1.5,
    )


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StepSpy:
    step = StepSpy(_result(tmp_path / "model"))
    monkeypatch.setattr(download_cli, "download_model", step)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    return step


def test_hub_source_flags_reach_the_step(
    spy: StepSpy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")
    argv = ["download", "--source", "hf://org/repo", "--revision", "v1", "--model-dir", str(tmp_path / "m")]
    assert main([*argv, "--variant", "fp16"]) == 0
    (call,) = spy.calls
    assert call["source"] == HubSource("org/repo", "v1")
    assert call["dest"] == tmp_path / "m" and call["variant"] == "fp16"
    assert call["token"].get_secret_value() == TOKEN and call["endpoint"] == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("https://hf-mirror.example.com/", "https://hf-mirror.example.com"), ("  ", None)],
)
def test_hub_endpoint_is_normalised_or_unset(
    spy: StepSpy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
) -> None:
    # The ConfigMap carries HF_ENDPOINT as "" when .env leaves it empty: that is huggingface.co.
    monkeypatch.setenv("HF_ENDPOINT", value)
    assert main(["download", "--source", "hf://org/repo", "--model-dir", str(tmp_path / "m")]) == 0
    assert spy.calls[0]["endpoint"] == expected


@pytest.mark.parametrize("value", ["hf-mirror.example.com", "ftp://mirror", "https://"])
def test_hub_endpoint_that_is_not_a_url_exits_1_naming_it(
    spy: StepSpy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", value)
    assert main(["download", "--source", "hf://org/repo", "--model-dir", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert spy.calls == [] and f"HF_ENDPOINT={value!r} is not an http(s) URL" in err
    assert "Traceback" not in err


def test_file_source_reaches_the_step(spy: StepSpy, tmp_path: Path) -> None:
    assert main(["download", "--source", "file:///models/tiny", "--model-dir", str(tmp_path / "m")]) == 0
    assert spy.calls[0]["source"] == LocalSource(Path("/models/tiny"))
    assert spy.calls[0]["token"] is None and spy.calls[0]["variant"] is None


def test_results_are_written_and_printed_without_the_token(
    spy: StepSpy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    argv = ["download", "--source", "hf://org/repo", "--model-dir", str(tmp_path / "m"), "-v"]
    assert main([*argv, "--results-dir", str(tmp_path / "results")]) == 0
    results = tmp_path / "results"
    assert (results / "SOURCE_REVISION").read_text() == "a" * 40
    assert (results / "MANIFEST_SHA256").read_text() == "b" * 64
    assert (results / "TOTAL_BYTES").read_text() == "1234"
    out, err = capsys.readouterr()
    assert "TOTAL_BYTES: 1234" in out and "bytes_reused: 234" in out
    assert TOKEN not in out + err


def test_revision_contradicting_source_exits_1_before_the_step(
    spy: StepSpy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["download", "--source", "hf://org/repo@v1", "--revision", "v2", "--model-dir", str(tmp_path)]
    code = main(argv)
    assert code == 1 and spy.calls == []
    assert "contradicts" in capsys.readouterr().err


def test_missing_dest_is_a_usage_error(spy: StepSpy) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["download", "--source", "hf://org/repo"])
    assert excinfo.value.code == 2


def test_bad_variant_name_exits_1(spy: StepSpy, tmp_path: Path) -> None:
    assert main(["download", "--source", "hf://o/r", "--model-dir", str(tmp_path), "--variant", "../x"]) == 1
    assert spy.calls == []


def test_not_a_diffusers_model_exits_1_with_one_line(
    spy: StepSpy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spy.error = NotADiffusersModelError(
        "hf://org/repo@abc has no model_index.json", fix="use a diffusers repo"
    )
    assert main(["download", "--source", "hf://org/repo", "--model-dir", str(tmp_path / "m")]) == 1
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err_lines == [
        "modelpipe download: error: hf://org/repo@abc has no model_index.json (fix: use a diffusers repo)"
    ]
