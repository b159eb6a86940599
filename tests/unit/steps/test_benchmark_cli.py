"""`modelpipe benchmark` in-process with the step patched, and CLIP source resolution without network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import modelpipe.steps.benchmark as benchmark_step
import pytest
from modelpipe import clip_models
from modelpipe.benchmark_schema import BenchmarkResults
from modelpipe.cli import main
from modelpipe.errors import BenchmarkError
from modelpipe.steps.benchmark import BenchmarkOutcome

from tests.unit.steps.test_benchmark_schema import sample_results_dict

TOKEN = "hf_secret_token_value_123456"


class StepSpy:
    def __init__(self, out: Path, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.out, self.error = out, error

    def __call__(self, **kwargs: Any) -> BenchmarkOutcome:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        results = BenchmarkResults.model_validate(sample_results_dict())
        return BenchmarkOutcome(
            results=results, results_path=self.out / "results.json", images_dir=self.out / "images"
        )


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StepSpy:
    step = StepSpy(tmp_path / "out")
    monkeypatch.setattr(benchmark_step, "benchmark_model", step)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return step


BASE = ["benchmark", "--endpoint", "http://127.0.0.1:8080", "--model-name", "tiny", "--clip-model", "/m/clip"]


def test_flags_reach_the_step(spy: StepSpy, tmp_path: Path) -> None:
    argv = [*BASE, "--benchmark-dir", str(tmp_path / "out"), "--prompts", "p.txt", "--concurrency", "1, 3,5"]
    argv += ["--requests", "6", "--warmup", "0", "--steps", "3", "--size", "64x128", "--guidance", "0"]
    assert main([*argv, "--seed", "9", "--timeout", "30", "--clip-cache", str(tmp_path / "cache")]) == 0
    (call,) = spy.calls
    assert call["endpoint"] == "http://127.0.0.1:8080" and call["model_name"] == "tiny"
    assert call["clip_model"] == "/m/clip" and call["prompts_file"] == Path("p.txt")
    assert call["concurrency"] == [1, 3, 5]
    assert (call["requests"], call["warmup"], call["steps"]) == (6, 0, 3)
    assert (call["width"], call["height"], call["guidance_scale"], call["seed"]) == (64, 128, 0.0, 9)
    assert (call["timeout_seconds"], call["clip_cache_dir"]) == (30.0, tmp_path / "cache")
    assert call["hf_token"].get_secret_value() == TOKEN


def test_defaults_follow_the_contract(spy: StepSpy, tmp_path: Path) -> None:
    argv = ["benchmark", "--endpoint", "http://e", "--model-name", "m"]
    argv += ["--benchmark-dir", str(tmp_path / "out")]
    assert main(argv) == 0
    (call,) = spy.calls
    assert call["clip_model"] == "hf://openai/clip-vit-base-patch16"
    assert call["concurrency"] == [1, 2, 4, 8] and call["prompts_file"] is None
    # No settings: the step reads the served model's defaults from its V2 metadata.
    assert (call["width"], call["height"], call["steps"], call["guidance_scale"]) == (None, None, None, None)


def test_empty_settings_mean_the_served_models_defaults(spy: StepSpy, tmp_path: Path) -> None:
    argv = [
        "benchmark",
        "--endpoint",
        "http://e",
        "--model-name",
        "m",
        "--benchmark-dir",
        str(tmp_path / "out"),
    ]
    assert main([*argv, "--steps", "", "--size", "", "--guidance", ""]) == 0
    (call,) = spy.calls
    assert (call["width"], call["steps"], call["guidance_scale"]) == (None, None, None)


def test_s3_clip_model_gets_the_data_connection(
    spy: StepSpy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_S3_ENDPOINT", "http://127.0.0.1:9000")
    argv = ["benchmark", "--endpoint", "http://e", "--model-name", "m", "--clip-model", "s3://b/clip"]
    assert main([*argv, "--benchmark-dir", str(tmp_path)]) == 0
    assert spy.calls[0]["s3_settings"].endpoint_url == "http://127.0.0.1:9000"


def test_results_are_written_and_printed(
    spy: StepSpy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results_dir = tmp_path / "results"
    argv = [*BASE, "--benchmark-dir", str(tmp_path / "out"), "--results-dir", str(results_dir), "--json"]
    assert main(argv) == 0
    written = {p.name: p.read_text() for p in results_dir.iterdir()}
    assert written == {
        "CLIP_SCORE": "21.5000",
        "P50_SECONDS": "0.2000",
        "P95_SECONDS": "0.3500",
        "IMAGES_PER_SECOND": "4.0000",
    }
    printed = json.loads(capsys.readouterr().out)
    assert printed["CLIP_SCORE"] == "21.5000" and printed["errors"] == "1/8 timed requests"
    assert TOKEN not in json.dumps(printed)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--size", "64"),
        ("--concurrency", "1,,2"),
        ("--requests", "many"),
        ("--timeout", "soon"),
        ("--guidance", "lots"),
    ],
)
def test_values_of_the_wrong_type_are_usage_errors(
    spy: StepSpy, tmp_path: Path, flag: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*BASE, "--benchmark-dir", str(tmp_path), flag, value])
    assert exit_info.value.code == 2
    assert spy.calls == []


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--size", "65x64", "multiples of 8"),
        ("--concurrency", "0,1", "concurrency levels must be >= 1"),
        ("--concurrency", "2,2", "concurrency levels repeat"),
        ("--requests", "0", "requests must be >= 1"),
        ("--warmup", "-1", "warmup must be >= 0"),
        ("--timeout", "0", "timeout must be > 0"),
        ("--guidance", "nan", "guidance_scale must be >= 0"),
    ],
)
def test_out_of_range_values_are_refused_by_the_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, problem: str
) -> None:
    """The CLI only converts types; the step's one check names the problem (exit 1, nothing run)."""
    assert main([*BASE, "--benchmark-dir", str(tmp_path), flag, value]) == 1
    err = capsys.readouterr().err
    assert problem in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results.json").exists()


def test_known_failure_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error = BenchmarkError("endpoint http://e unreachable: ConnectError", fix="check --endpoint")
    monkeypatch.setattr(benchmark_step, "benchmark_model", StepSpy(tmp_path, error))
    assert main([*BASE, "--benchmark-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1]
        == "modelpipe benchmark: error: endpoint http://e unreachable: ConnectError (fix: check --endpoint)"
    )


def test_hf_clip_source_records_repo_and_resolved_revision(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    snapshot = tmp_path / "snapshots" / ("c" * 40)
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_snapshot_download(repo: str, **kwargs: Any) -> str:
        calls.append((repo, kwargs))
        return str(snapshot)

    monkeypatch.setattr(clip_models, "snapshot_download", fake_snapshot_download)
    with clip_models.clip_model_dir(
        "hf://openai/clip-vit-base-patch16@main", s3_settings=None, hf_token=None, cache_dir=None
    ) as (folder, info):
        assert folder == snapshot
    assert (info.id, info.revision, info.source) == (
        "openai/clip-vit-base-patch16",
        "c" * 40,
        "hf://openai/clip-vit-base-patch16@main",
    )
    assert calls[0][1]["revision"] == "main"
    assert "*.safetensors" in calls[0][1]["allow_patterns"] and "*.bin" not in calls[0][1]["allow_patterns"]


def test_unreachable_hub_is_a_benchmark_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo: str, **kwargs: Any) -> str:
        raise LocalEntryNotFoundError("cannot find the requested files\nmore detail")

    monkeypatch.setattr(clip_models, "snapshot_download", offline)
    with (
        pytest.raises(BenchmarkError, match=r"cannot download CLIP model hf://o/r: LocalEntryNotFoundError"),
        clip_models.clip_model_dir("hf://o/r", s3_settings=None, hf_token=None, cache_dir=None),
    ):
        pass


def test_s3_clip_source_without_a_connection_is_refused() -> None:
    with (
        pytest.raises(BenchmarkError, match="needs an S3 connection"),
        clip_models.clip_model_dir("s3://b/clip", s3_settings=None, hf_token=None, cache_dir=None),
    ):
        pass


@pytest.mark.parametrize("source", ["gs://bucket/clip", "hf://just-a-name"])
def test_unsupported_clip_sources_are_refused(source: str) -> None:
    with (
        pytest.raises(BenchmarkError, match="CLIP model source"),
        clip_models.clip_model_dir(source, s3_settings=None, hf_token=None, cache_dir=None),
    ):
        pass


def test_folder_clip_source_is_used_in_place(tmp_path: Path) -> None:
    with clip_models.clip_model_dir(str(tmp_path), s3_settings=None, hf_token=None, cache_dir=None) as (
        folder,
        info,
    ):
        assert folder == tmp_path.resolve()
    assert (info.id, info.source, info.revision) == (tmp_path.name, str(tmp_path), None)


def test_step_refuses_bad_settings_before_touching_anything(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError) as info:
        benchmark_step.benchmark_model(
            endpoint="http://127.0.0.1:1",
            model_name="m",
            clip_model=str(tmp_path),
            out_dir=tmp_path / "out",
            concurrency=(2, 2),
            width=65,
            guidance_scale=-1,
            timeout_seconds=0,
        )
    for problem in ("concurrency levels repeat", "multiples of 8", "guidance_scale must be >= 0", "timeout"):
        assert problem in str(info.value)
    assert not (tmp_path / "out").exists()
