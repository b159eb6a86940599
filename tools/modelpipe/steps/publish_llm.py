"""Publish a language model's lm-eval scores and guidellm figures to its model version and a report to S3."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from model_registry.types import SupportedTypes

from modelpipe.config import RegistrySettings, S3Settings
from modelpipe.errors import ConfigError
from modelpipe.llm_results import EvaluationResults, LLMBenchmarkResults
from modelpipe.registry_client import TEXT_SUFFIX, connect_registry, get_version, numbers_with_text
from modelpipe.s3 import S3Client, S3Location, make_s3_client
from modelpipe.steps.publish import (
    PROP_REPORT_URI,
    PROP_RESULTS_URI,
    GateOutcome,
    PublishResult,
    record_and_check,
    report_location,
    run_properties,
)

PROP_EVALUATION_URI = "lm_eval_results_uri"
PROP_LM_EVAL_TASKS = "lm_eval_tasks"
PROP_LM_EVAL_LIMIT = "lm_eval_limit"
PROP_LM_EVAL_VERSION = "lm_eval_version"
PROP_GUIDELLM_VERSION = "guidellm_version"
PROP_GUIDELLM_SETTINGS = "guidellm_settings"
# guidellm summary fields published as doubles (key guidellm_<field>) plus string copies.
GUIDELLM_FIELDS: tuple[str, ...] = (
    "ttft_p50_ms",
    "ttft_p95_ms",
    "itl_p50_ms",
    "tpot_p50_ms",
    "request_latency_p50_seconds",
    "request_latency_p95_seconds",
    "request_latency_p99_seconds",
    "requests_per_second",
    "output_tokens_per_second",
    "requests",
    "errors",
)
_GATE = re.compile(r"(min|max)-([A-Za-z0-9_.:-]+)=(.+)")


def measured_values(
    evaluation: EvaluationResults | None, benchmark: LLMBenchmarkResults | None
) -> dict[str, float]:
    """Every number a gate can name: ``<metric>-<task>`` from lm-eval, the guidellm summary fields.

    Metrics under a filter other than ``none`` are named ``<metric>_<filter>-<task>``.
    """
    values: dict[str, float] = {}
    for task in evaluation.tasks if evaluation else []:
        for metric in task.metrics:
            name = metric.name if metric.filter == "none" else f"{metric.name}_{metric.filter}"
            values[f"{name}-{task.name}"] = metric.value
    if benchmark is not None:
        summary = benchmark.summary.model_dump()
        values.update({field: float(summary[field]) for field in GUIDELLM_FIELDS})
    return values


def parse_gates(specs: Sequence[str], measured: Mapping[str, float]) -> tuple[GateOutcome, ...]:
    """``min-acc-arc_easy=0.3`` / ``max-ttft_p95_ms=200`` against the measured values.

    Raises:
        ConfigError: A spec is malformed, its bound is not a finite number, or it names no measured value
            (the message lists what can be gated).
    """
    gates = []
    for spec in specs:
        match = _GATE.fullmatch(spec.strip())
        if not match:
            raise ConfigError(
                f"gate {spec!r} is not min-NAME=NUMBER or max-NAME=NUMBER", fix="e.g. min-acc-arc_easy=0.3"
            )
        side, name, text = match.groups()
        try:
            bound = float(text)
        except ValueError as err:
            raise ConfigError(f"gate {spec!r}: {text!r} is not a number") from err
        if not (-float("inf") < bound < float("inf")):
            raise ConfigError(f"gate {spec!r}: the bound must be finite")
        if name not in measured:
            raise ConfigError(
                f"gate {spec!r} names {name!r}, which these results do not measure",
                fix=f"gate one of: {', '.join(sorted(measured))}",
            )
        gates.append(GateOutcome(name, measured[name], bound, ">=" if side == "min" else "<="))
    return tuple(gates)


def llm_properties(
    evaluation: EvaluationResults | None,
    benchmark: LLMBenchmarkResults | None,
    *,
    report_uri: str,
    evaluation_uri: str | None,
    results_uri: str | None,
    gates: tuple[GateOutcome, ...],
    pipeline_run: str | None,
) -> dict[str, SupportedTypes]:
    """Custom properties: scores and figures as doubles plus ``_text`` copies, provenance as strings."""
    properties: dict[str, SupportedTypes] = {PROP_REPORT_URI: report_uri}
    if evaluation is not None:
        properties.update(_evaluation_properties(evaluation))
        if evaluation_uri:
            properties[PROP_EVALUATION_URI] = evaluation_uri
    if benchmark is not None:
        summary = benchmark.summary.model_dump()
        numbers = {field: float(summary[field]) for field in GUIDELLM_FIELDS}
        properties.update(
            numbers_with_text(
                {
                    f"guidellm_{field}": (
                        value,
                        str(int(value)) if field in {"requests", "errors"} else f"{value:.3f}",
                    )
                    for field, value in numbers.items()
                }
            )
        )
        s = benchmark.settings
        properties[PROP_GUIDELLM_VERSION] = benchmark.guidellm_version
        properties[PROP_GUIDELLM_SETTINGS] = (
            f"synthetic {s.prompt_tokens} prompt / {s.output_tokens} output tokens, "
            f"concurrency {','.join(str(c) for c in s.concurrency)}, "
            f"{s.requests_per_level} requests per level, "
            f"{s.request_format}"
        )
        if results_uri:
            properties[PROP_RESULTS_URI] = results_uri
    newest = max(r.created for r in (evaluation, benchmark) if r is not None)
    properties.update(run_properties(newest, gates=gates, pipeline_run=pipeline_run))
    return properties


def _evaluation_properties(evaluation: EvaluationResults) -> dict[str, SupportedTypes]:
    properties: dict[str, SupportedTypes] = {
        PROP_LM_EVAL_TASKS: ",".join(task.name for task in evaluation.tasks),
        PROP_LM_EVAL_LIMIT: "all" if evaluation.limit is None else str(evaluation.limit),
        PROP_LM_EVAL_VERSION: evaluation.lm_eval_version,
    }
    for task in evaluation.tasks:
        prefix = f"lm_eval_{task.name}"
        for metric in task.metrics:
            name = metric.name if metric.filter == "none" else f"{metric.name}_{metric.filter}"
            key = f"{prefix}_{name}"
            properties[key] = metric.value
            text = f"{metric.value:.4f}"
            if metric.stderr is not None:
                properties[f"{key}_stderr"] = metric.stderr
                text += f" ± {metric.stderr:.4f}"
            properties[key + TEXT_SUFFIX] = text
        properties[f"{prefix}_samples"] = str(task.samples)
        if task.prompt_sha256:
            properties[f"{prefix}_prompt_hash"] = task.prompt_sha256
        if task.data_sha256:
            properties[f"{prefix}_data_sha256"] = task.data_sha256
    return properties


def publish_llm_results(
    *,
    registry: RegistrySettings,
    s3: S3Settings,
    model_version_id: str,
    evaluation_dir: Path | None,
    benchmark_dir: Path | None,
    model_uri: str | None = None,
    report_dest: str | None = None,
    gates: Sequence[str] = (),
    pipeline_run: str | None = None,
) -> PublishResult:
    """Upload the report, then write scores, figures and provenance to the model version; gates last.

    Labels: ``benchmarked``, and ``validated`` when gates were given and all passed.

    Args:
        registry: Registry URL, token and author.
        s3: The data connection for the report bucket.
        model_version_id: The version to annotate.
        evaluation_dir: ``modelpipe evaluate --eval-dir`` folder, or None.
        benchmark_dir: ``modelpipe benchmark --model-kind text-generation`` folder, or None.
        model_uri: The model's ``s3://`` URI; the report goes to ``<parent>/reports/<name>/<time>``.
        report_dest: Report location instead.
        gates: ``min-NAME=V`` / ``max-NAME=V`` specs over :func:`measured_values`.
        pipeline_run: PipelineRun name recorded with the results.

    Raises:
        ConfigError: No results folder, a bad gate, or no report destination.
        BenchmarkResultsError: A results.json is missing or invalid.
        StorageError, RegistryError: Upload or registry update failed.
        QualityGateError: A gate failed (after publishing).
    """
    if evaluation_dir is None and benchmark_dir is None:
        raise ConfigError("nothing to publish", fix="pass --eval-dir and/or --benchmark-dir")
    evaluation = EvaluationResults.load(evaluation_dir) if evaluation_dir else None
    benchmark = LLMBenchmarkResults.load(benchmark_dir) if benchmark_dir else None
    checked = parse_gates(gates, measured_values(evaluation, benchmark))
    created = max(r.created for r in (evaluation, benchmark) if r is not None)
    destination = report_location(created, model_uri=model_uri, report_dest=report_dest)
    client = connect_registry(registry)
    # Read before uploading, so a wrong id fails before anything is written.
    get_version(client, model_version_id)
    uploaded = _upload(make_s3_client(s3), evaluation, benchmark, destination)
    from modelpipe.llm_report import BENCHMARK_FILE, EVALUATION_FILE, INDEX_FILE

    report_uri = destination.child(INDEX_FILE).uri
    properties = llm_properties(
        evaluation,
        benchmark,
        report_uri=report_uri,
        evaluation_uri=destination.child(EVALUATION_FILE).uri if evaluation else None,
        results_uri=destination.child(BENCHMARK_FILE).uri if benchmark else None,
        gates=checked,
        pipeline_run=pipeline_run,
    )
    validated = record_and_check(
        client, model_version_id, properties, gates=checked, report_uri=report_uri, uploaded=uploaded
    )
    return PublishResult(
        report_uri=report_uri,
        results_uri=destination.child(BENCHMARK_FILE if benchmark else EVALUATION_FILE).uri,
        validated=validated,
        gates=checked,
        objects_uploaded=uploaded,
        model_version_id=model_version_id,
    )


def _upload(
    client: S3Client,
    evaluation: EvaluationResults | None,
    benchmark: LLMBenchmarkResults | None,
    where: S3Location,
) -> int:
    """Render the report and upload it, page last; returns the object count."""
    # Imported here: matplotlib costs a second, and a refused flag never needs it.
    from modelpipe.llm_report import render_llm_report
    from modelpipe.report import upload_report

    _, uploaded = upload_report(
        client, where, lambda staging: render_llm_report(evaluation, benchmark, staging)
    )
    return uploaded
