"""publish for language models: gate specs, the numbers a gate can name, the version's properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe import cli
from modelpipe.errors import BenchmarkResultsError, ConfigError
from modelpipe.llm_report import INDEX_FILE, render_llm_report
from modelpipe.llm_results import EvaluationResults, LLMBenchmarkResults, results_kind
from modelpipe.steps import publish_llm as step
from modelpipe.steps.publish import PublishResult

from tests.unit.steps import llm_samples


def test_gateable_names_are_metric_dash_task_and_guidellm_fields() -> None:
    measured = step.measured_values(llm_samples.evaluation(), llm_samples.benchmark())
    assert measured["acc-arc_easy"] == 0.25
    assert measured["acc_norm-arc_easy"] == 0.3
    # A filtered metric carries its filter, so two filters of one metric never collide.
    assert measured["exact_match_strip-modelpipe_arith_gen"] == 0.0
    assert measured["ttft_p95_ms"] == 20.0
    assert measured["output_tokens_per_second"] == 480.0


def test_min_and_max_gates_compare_inclusively() -> None:
    measured = {"acc-arc_easy": 0.25, "ttft_p95_ms": 20.0}
    low, high = step.parse_gates(["min-acc-arc_easy=0.25", "max-ttft_p95_ms=19.5"], measured)
    assert (low.comparison, low.passed) == (">=", True)
    assert (high.comparison, high.passed) == ("<=", False)
    assert high.describe() == "ttft_p95_ms measured 20 vs required <= 19.5: FAIL"


def test_gate_on_an_unmeasured_name_is_refused_listing_the_names() -> None:
    with pytest.raises(ConfigError, match="acc-hellaswag") as err:
        step.parse_gates(["min-acc-hellaswag=0.3"], {"acc-arc_easy": 0.25})
    assert err.value.fix is not None and "acc-arc_easy" in err.value.fix


@pytest.mark.parametrize(
    "spec", ["acc-arc_easy=0.3", "min-acc-arc_easy", "min-acc-arc_easy=high", "max-x=inf"]
)
def test_malformed_gate_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError):
        step.parse_gates([spec], {"acc-arc_easy": 0.25, "x": 1.0})


def test_properties_hold_doubles_text_copies_and_provenance() -> None:
    gates = step.parse_gates(["min-acc-arc_easy=0.2"], {"acc-arc_easy": 0.25})
    props = step.llm_properties(
        llm_samples.evaluation(),
        llm_samples.benchmark(),
        report_uri="s3://b/reports/index.html",
        evaluation_uri="s3://b/reports/evaluation.json",
        results_uri="s3://b/reports/results.json",
        gates=gates,
        pipeline_run="model-import-x",
    )
    assert props["lm_eval_arc_easy_acc"] == 0.25
    assert props["lm_eval_arc_easy_acc_stderr"] == 0.0993
    assert props["lm_eval_arc_easy_acc_text"] == "0.2500 ± 0.0993"
    assert props["lm_eval_tasks"] == "arc_easy,modelpipe_arith_gen"
    assert props["lm_eval_limit"] == "20"
    assert props["lm_eval_version"] == "0.4.13"
    assert props["lm_eval_arc_easy_prompt_hash"] == "a" * 64
    assert props["lm_eval_modelpipe_arith_gen_data_sha256"] == "c" * 64
    assert props["guidellm_ttft_p50_ms"] == 10.0
    assert props["guidellm_ttft_p50_ms_text"] == "10.000"
    assert props["guidellm_output_tokens_per_second"] == 480.0
    assert props["guidellm_errors_text"] == "0"
    assert props["benchmark_report_uri"] == "s3://b/reports/index.html"
    assert props["benchmark_created"] == "2026-12-06T21:00:00Z"
    assert "acc_easy" not in str(props["benchmark_gates"]) and "pass" in str(props["benchmark_gates"])
    assert props["benchmark_pipeline_run"] == "model-import-x"


def test_evaluation_alone_publishes_no_guidellm_numbers() -> None:
    props = step.llm_properties(
        llm_samples.evaluation(),
        None,
        report_uri="s3://b/r/index.html",
        evaluation_uri="s3://b/r/evaluation.json",
        results_uri=None,
        gates=(),
        pipeline_run=None,
    )
    assert not any(key.startswith("guidellm_") for key in props)
    assert props["lm_eval_results_uri"] == "s3://b/r/evaluation.json"


def test_results_round_trip_and_kind_is_recorded(tmp_path: Path) -> None:
    llm_samples.evaluation().save(tmp_path / "e" / "results.json")
    llm_samples.benchmark().save(tmp_path / "b" / "results.json")
    assert EvaluationResults.load(tmp_path / "e") == llm_samples.evaluation()
    assert LLMBenchmarkResults.load(tmp_path / "b") == llm_samples.benchmark()
    assert (results_kind(tmp_path / "e"), results_kind(tmp_path / "b")) == ("lm-eval", "guidellm")


def test_loading_the_wrong_kind_names_the_field(tmp_path: Path) -> None:
    llm_samples.evaluation().save(tmp_path / "results.json")
    with pytest.raises(BenchmarkResultsError, match="kind"):
        LLMBenchmarkResults.load(tmp_path)


def test_report_has_tables_plots_and_both_results(tmp_path: Path) -> None:
    page = render_llm_report(llm_samples.evaluation(), llm_samples.benchmark(), tmp_path)
    assert page == tmp_path / INDEX_FILE
    text = page.read_text(encoding="utf-8")
    assert "arc_easy" in text and "0.2500" in text and "TTFT p95 ms" in text
    for name in ("scores.png", "latency.png", "throughput.png", "evaluation.json", "results.json"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_cli_passes_eval_dir_gates_and_maps_max_p95(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def fake(**kwargs: object) -> PublishResult:
        seen.update(kwargs)
        return PublishResult("s3://b/r/index.html", "s3://b/r/results.json", True, (), 5, "7")

    monkeypatch.setattr(step, "publish_llm_results", fake)
    code = cli.main(
        [
            "publish",
            "--model-kind",
            "text-generation",
            "--eval-dir",
            str(tmp_path / "eval"),
            "--benchmark-dir",
            str(tmp_path / "bench"),
            "--model-version-id",
            "7",
            "--model-uri",
            "s3://b/models/tiny-llm/v1",
            "--gates",
            "min-acc-arc_easy=0.2",
            "--max-p95-seconds",
            "2",
            "--registry-url",
            "http://127.0.0.1:9",
        ]
    )
    assert code == 0
    assert seen["evaluation_dir"] == tmp_path / "eval"
    assert seen["benchmark_dir"] == tmp_path / "bench"
    assert seen["gates"] == ["min-acc-arc_easy=0.2", "max-request_latency_p95_seconds=2.0"]


def test_cli_refuses_clip_gate_for_a_language_model(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        [
            "publish",
            "--model-kind",
            "text-generation",
            "--eval-dir",
            "e",
            "--model-version-id",
            "7",
            "--model-uri",
            "s3://b/m",
            "--min-clip-score",
            "20",
        ]
    )
    assert code == 1
    assert "--min-clip-score applies to text-to-image" in capsys.readouterr().err
