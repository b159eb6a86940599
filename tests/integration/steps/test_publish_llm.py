"""publish_llm_results against SeaweedFS and the local registry: report objects, properties, labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelpipe.config import RegistrySettings, S3Settings
from modelpipe.errors import QualityGateError
from modelpipe.steps.publish import PublishResult
from modelpipe.steps.publish_llm import publish_llm_results

from tests.integration.steps.test_publish import objects, official_client
from tests.unit.steps import llm_samples

pytestmark = pytest.mark.integration

MODEL_URI = "s3://models/tiny-llm/0123abcd"
REPORT_PREFIX = "tiny-llm/reports/0123abcd/20261206T210000Z"
REPORT_FILES = {
    "index.html",
    "evaluation.json",
    "results.json",
    "scores.png",
    "latency.png",
    "throughput.png",
}


@pytest.fixture
def version_id(registry_server) -> str:
    client = official_client(registry_server)
    client.register_model(
        "tiny-llm",
        MODEL_URI,
        model_format_name="vllm",
        model_format_version="1",
        version="1.0",
        metadata={"source_revision": "0123abcd"},
    )
    return str(client.get_model_version("tiny-llm", "1.0").id)


@pytest.fixture
def results(tmp_path: Path) -> tuple[Path, Path]:
    llm_samples.evaluation().save(tmp_path / "eval" / "results.json")
    llm_samples.benchmark().save(tmp_path / "bench" / "results.json")
    return tmp_path / "eval", tmp_path / "bench"


def publish(
    registry_server, s3_server, results: tuple[Path, Path], version_id: str, *gates: str
) -> PublishResult:
    return publish_llm_results(
        registry=RegistrySettings(url=registry_server.url, token=None, author="tests"),
        s3=S3Settings.from_env(s3_server.env),
        model_version_id=version_id,
        evaluation_dir=results[0],
        benchmark_dir=results[1],
        model_uri=MODEL_URI,
        gates=gates,
        pipeline_run="testing-run-1",
    )


def test_publish_uploads_the_report_and_writes_scores_figures_and_labels(
    registry_server, s3_server, version_id: str, results: tuple[Path, Path]
) -> None:
    result = publish(registry_server, s3_server, results, version_id, "min-acc-arc_easy=0.2")

    assert result.report_uri == f"s3://models/{REPORT_PREFIX}/index.html"
    assert result.results_uri == f"s3://models/{REPORT_PREFIX}/results.json"
    assert (result.validated, result.objects_uploaded) == (True, len(REPORT_FILES))
    stored = objects(s3_server, REPORT_PREFIX)
    assert set(stored) == REPORT_FILES
    assert json.loads(stored["evaluation.json"])["kind"] == "lm-eval"
    assert stored["scores.png"].startswith(b"\x89PNG")
    head = s3_server.client().head_object(Bucket="models", Key=f"{REPORT_PREFIX}/index.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    props = official_client(registry_server).get_model_version("tiny-llm", "1.0").custom_properties
    assert props["lm_eval_arc_easy_acc"] == 0.25 and props["lm_eval_arc_easy_acc_text"] == "0.2500 ± 0.0993"
    assert props["guidellm_ttft_p95_ms"] == 20.0 and props["guidellm_ttft_p95_ms_text"] == "20.000"
    assert props["benchmark_report_uri"] == result.report_uri
    assert props["lm_eval_results_uri"] == f"s3://models/{REPORT_PREFIX}/evaluation.json"
    assert props["benchmark_pipeline_run"] == "testing-run-1"
    assert (props["benchmarked"], props["validated"]) == ("", "")
    assert props["source_revision"] == "0123abcd"  # what register wrote stays


def test_a_failed_gate_still_publishes_and_drops_validated(
    registry_server, s3_server, version_id: str, results: tuple[Path, Path]
) -> None:
    publish(registry_server, s3_server, results, version_id, "min-acc-arc_easy=0.2")

    with pytest.raises(QualityGateError, match=r"ttft_p95_ms measured 20 vs required <= 5: FAIL"):
        publish(registry_server, s3_server, results, version_id, "max-ttft_p95_ms=5")

    props = official_client(registry_server).get_model_version("tiny-llm", "1.0").custom_properties
    assert "validated" not in props and "FAIL" in props["benchmark_gates"]
    assert set(objects(s3_server, REPORT_PREFIX)) == REPORT_FILES
