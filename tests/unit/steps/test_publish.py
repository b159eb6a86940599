"""publish: gates, the properties written, where the report goes, and the CLI glue (step patched)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelpipe import cli
from modelpipe.benchmark_schema import BenchmarkResults
from modelpipe.errors import ConfigError, QualityGateError
from modelpipe.steps import publish as step
from modelpipe.steps.publish import GateOutcome, PublishResult

from tests.unit.steps.test_benchmark_schema import sample_results_dict


@pytest.fixture
def results() -> BenchmarkResults:
    return BenchmarkResults.model_validate(sample_results_dict())


def test_no_gates_means_nothing_to_validate(results: BenchmarkResults) -> None:
    assert step.evaluate_gates(results, min_clip_score=None, max_p95_seconds=None) == ()


def test_gates_compare_mean_clip_score_and_single_stream_p95(
    results: BenchmarkResults,
) -> None:
    clip, p95 = step.evaluate_gates(results, min_clip_score=25.0, max_p95_seconds=0.5)
    assert (clip.measured, clip.passed) == (21.5, False)
    assert (p95.measured, p95.passed) == (0.35, True)
    assert clip.describe() == "clip_score measured 21.5 vs required >= 25: FAIL"


def test_gate_bounds_are_inclusive(results: BenchmarkResults) -> None:
    gates = step.evaluate_gates(results, min_clip_score=21.5, max_p95_seconds=0.35)
    assert all(gate.passed for gate in gates)


def test_negative_gate_is_refused(results: BenchmarkResults) -> None:
    with pytest.raises(ConfigError, match="--max-p95-seconds"):
        step.evaluate_gates(results, min_clip_score=None, max_p95_seconds=-1.0)


def test_numbers_are_written_as_doubles_with_string_copies(
    results: BenchmarkResults,
) -> None:
    props = step.benchmark_properties(
        results,
        report_uri="s3://b/r/report.html",
        results_uri="s3://b/r/results.json",
        gates=(),
        pipeline_run="r1",
    )
    for key in step.NUMBER_KEYS:
        assert isinstance(props[key], float), key
        assert isinstance(props[key + step.TEXT_SUFFIX], str), key
    assert props["benchmark_clip_score_text"] == "21.50"
    assert props["benchmark_p95_seconds"] == 0.35 and props["benchmark_p95_seconds_text"] == "0.350"
    assert props["benchmark_errors_text"] == "1"
    assert props[step.PROP_REPORT_URI] == "s3://b/r/report.html"
    assert props[step.PROP_CLIP_MODEL] == "tiny-clip"
    assert props[step.PROP_PROMPT_SET_SHA256] == "a" * 64
    assert props[step.PROP_PIPELINE_RUN] == "r1"


def test_report_goes_next_to_the_model_in_a_folder_named_by_run_time(
    results: BenchmarkResults,
) -> None:
    where = step.report_location(results.created, model_uri="s3://models/tiny-sd/0123abcd", report_dest=None)
    assert where.uri == "s3://models/tiny-sd/reports/0123abcd/20261122T080000Z"


def test_model_at_bucket_top_level_gets_reports_at_bucket_top_level(
    results: BenchmarkResults,
) -> None:
    where = step.report_location(results.created, model_uri="s3://models/tiny-sd", report_dest=None)
    assert where.uri == "s3://models/reports/tiny-sd/20261122T080000Z"


def test_report_dest_overrides_the_model_location(results: BenchmarkResults) -> None:
    where = step.report_location(
        results.created, model_uri="s3://models/tiny-sd", report_dest="s3://reports/manual/"
    )
    assert where.uri == "s3://reports/manual"


def test_no_destination_is_a_config_error(results: BenchmarkResults) -> None:
    with pytest.raises(ConfigError, match="no report destination"):
        step.report_location(results.created, model_uri=None, report_dest=None)


@pytest.fixture
def only_publish_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the CLI with just this subcommand: other subcommands import heavy libraries."""
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("publish",))


BASE = [
    "publish",
    "--benchmark-dir=bench",
    "--model-version-id=7",
    "--registry-url=http://r:1",
]


def test_cli_passes_gates_and_writes_report_uri_and_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, only_publish_subcommand: None
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_publish(**kwargs: Any) -> PublishResult:
        calls.append(kwargs)
        gate = GateOutcome("clip_score", 30.0, 25.0, ">=")
        return PublishResult("s3://m/r/report.html", "s3://m/r/results.json", True, (gate,), 5, "7")

    monkeypatch.setattr("modelpipe.cli.publish.publish_results", fake_publish)
    monkeypatch.setenv("MODEL_REGISTRY_URL", "http://env-registry:8080")
    code = cli.main(
        [
            *BASE,
            "--model-uri=s3://m/tiny",
            "--min-clip-score=25",
            "--max-p95-seconds=2.5",
            f"--results-dir={tmp_path / 'out'}",
        ]
    )
    assert code == 0
    (kwargs,) = calls
    assert (kwargs["min_clip_score"], kwargs["max_p95_seconds"]) == (25.0, 2.5)
    assert kwargs["results_dir"] == Path("bench") and kwargs["model_version_id"] == "7"
    assert kwargs["registry"].url == "http://r:1"  # the flag wins over MODEL_REGISTRY_URL
    assert (tmp_path / "out" / "REPORT_URI").read_text() == "s3://m/r/report.html"
    assert (tmp_path / "out" / "VALIDATED").read_text() == "true"


def test_cli_without_destination_exits_1(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    only_publish_subcommand: None,
) -> None:
    monkeypatch.setattr(
        "modelpipe.cli.publish.publish_results",
        lambda **_: pytest.fail("must not publish"),
    )
    assert cli.main(BASE) == 1
    assert "--report-dest" in capsys.readouterr().err


def test_cli_failed_gate_exits_1_naming_measured_and_required(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    only_publish_subcommand: None,
) -> None:
    def failing(**_: Any) -> PublishResult:
        raise QualityGateError("quality gate failed: p95_seconds measured 4.2 vs required <= 3: FAIL")

    monkeypatch.setattr("modelpipe.cli.publish.publish_results", failing)
    assert cli.main([*BASE, "--model-uri=s3://m/tiny", "--max-p95-seconds=3"]) == 1
    assert "measured 4.2 vs required <= 3" in capsys.readouterr().err
