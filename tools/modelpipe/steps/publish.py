"""Publish benchmark results to the model version in the Model Registry and a report to S3."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from model_registry import ModelRegistry
from model_registry.types import SupportedTypes

from modelpipe.benchmark_schema import IMAGES_DIR, RESULTS_FILE, BenchmarkResults
from modelpipe.config import RegistrySettings, S3Settings
from modelpipe.errors import ConfigError, QualityGateError
from modelpipe.registry_client import TEXT_SUFFIX as TEXT_SUFFIX  # tests and publish_llm name it here
from modelpipe.registry_client import (
    connect_registry,
    get_version,
    numbers_with_text,
    update_version_properties,
)
from modelpipe.s3 import S3Client, S3Location, make_s3_client, parse_s3_uri

log = logging.getLogger(__name__)

LABEL_BENCHMARKED = "benchmarked"
LABEL_VALIDATED = "validated"
# Doubles under these keys, plus a string copy under "<key>_text".
NUMBER_KEYS: tuple[str, ...] = (
    "benchmark_clip_score",
    "benchmark_p50_seconds",
    "benchmark_p95_seconds",
    "benchmark_images_per_second",
    "benchmark_seconds_per_step",
    "benchmark_requests",
    "benchmark_errors",
)
PROP_REPORT_URI = "benchmark_report_uri"
PROP_RESULTS_URI = "benchmark_results_uri"
PROP_CLIP_MODEL = "benchmark_clip_model"
PROP_PROMPT_SET = "benchmark_prompt_set"
PROP_PROMPT_SET_SHA256 = "benchmark_prompt_set_sha256"
PROP_SETTINGS = "benchmark_settings"
PROP_CREATED = "benchmark_created"
PROP_GATES = "benchmark_gates"
PROP_PIPELINE_RUN = "benchmark_pipeline_run"


@dataclass(frozen=True)
class GateOutcome:
    """One quality gate: the measured value against the required bound."""

    name: str
    measured: float
    required: float
    comparison: str  # ">=" or "<="

    @property
    def passed(self) -> bool:
        if self.comparison == ">=":
            return self.measured >= self.required
        return self.measured <= self.required

    def describe(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        bound = f"{self.comparison} {self.required:g}"
        return f"{self.name} measured {self.measured:g} vs required {bound}: {verdict}"


@dataclass(frozen=True)
class PublishResult:
    """What was published.

    Attributes:
        report_uri: ``s3://.../index.html``, the report page.
        results_uri: ``s3://.../results.json``.
        validated: True when gates were given and all passed (the ``validated`` label was set).
        gates: Every gate evaluated (empty without gates).
        objects_uploaded: Objects written to S3.
        model_version_id: The version that got the results.
    """

    report_uri: str
    results_uri: str
    validated: bool
    gates: tuple[GateOutcome, ...]
    objects_uploaded: int
    model_version_id: str


def publish_results(
    *,
    registry: RegistrySettings,
    s3: S3Settings,
    results_dir: Path,
    model_version_id: str,
    model_uri: str | None = None,
    report_dest: str | None = None,
    min_clip_score: float | None = None,
    max_p95_seconds: float | None = None,
    pipeline_run: str | None = None,
) -> PublishResult:
    """Upload results.json, the HTML report and its PNGs, then write the numbers to the model version.

    Numbers go on the version as doubles plus string copies, with the report URI, the CLIP model and prompt
    set; labels ``benchmarked`` and, when every gate passes, ``validated``. Gates are checked after
    publishing, so failed numbers are still visible.

    Args:
        registry: Registry URL, token and author.
        s3: The data connection for the report bucket.
        results_dir: ``modelpipe benchmark --out`` folder (results.json and images/).
        model_version_id: The version to annotate (MODEL_VERSION_ID from register).
        model_uri: ``s3://BUCKET/PREFIX`` of the model; the report goes to ``<parent>/reports/<name>/<time>``.
        report_dest: ``s3://BUCKET/PREFIX`` for the report instead (overrides the location from model_uri).
        min_clip_score: Gate: mean CLIP score must be at least this.
        max_p95_seconds: Gate: single-stream p95 latency must be at most this.
        pipeline_run: PipelineRun name recorded with the results.

    Returns:
        Where the report is and whether the version was validated.

    Raises:
        ConfigError: Neither model_uri nor report_dest given, or a malformed URI or gate.
        BenchmarkResultsError: results.json is missing or does not match the schema.
        StorageError: An upload failed (nothing is written to the registry then).
        RegistryError: The registry is unreachable, the version does not exist, or the update was refused.
        QualityGateError: A gate failed (after the results were published).
    """
    results = BenchmarkResults.load(results_dir)
    destination = report_location(results.created, model_uri=model_uri, report_dest=report_dest)
    gates = evaluate_gates(results, min_clip_score=min_clip_score, max_p95_seconds=max_p95_seconds)
    client = connect_registry(registry)
    # Read before uploading, so a wrong id fails before anything is written.
    get_version(client, model_version_id)
    page, uploaded = _upload_report(make_s3_client(s3), results, results_dir, destination)
    report_uri = destination.child(page).uri
    results_uri = destination.child(RESULTS_FILE).uri
    properties = benchmark_properties(
        results, report_uri=report_uri, results_uri=results_uri, gates=gates, pipeline_run=pipeline_run
    )
    validated = record_and_check(
        client, model_version_id, properties, gates=gates, report_uri=report_uri, uploaded=uploaded
    )
    return PublishResult(
        report_uri=report_uri,
        results_uri=results_uri,
        validated=validated,
        gates=gates,
        objects_uploaded=uploaded,
        model_version_id=model_version_id,
    )


def report_location(created: datetime, *, model_uri: str | None, report_dest: str | None) -> S3Location:
    """Where this run's report goes: ``report_dest``, else ``<model parent>/reports/<model name>/<time>``.

    The folder is named after the results' creation time, so re-publishing the same results overwrites the
    same objects and a new benchmark run keeps the earlier report.

    Raises:
        ConfigError: Neither URI given, or one is not ``s3://BUCKET/...``.
    """
    if report_dest:
        return parse_s3_uri(report_dest)
    if not model_uri:
        raise ConfigError("no report destination", fix="pass --model-uri s3://... or --report-dest s3://...")
    model = parse_s3_uri(model_uri)
    if not model.key:
        raise ConfigError(f"--model-uri {model_uri!r} has no prefix", fix="use s3://BUCKET/PREFIX")
    key = PurePosixPath(model.key)
    parent = "" if str(key.parent) == "." else str(key.parent)
    stamp = created.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return S3Location(model.bucket, parent).child(f"reports/{key.name}/{stamp}")


def evaluate_gates(
    results: BenchmarkResults, *, min_clip_score: float | None, max_p95_seconds: float | None
) -> tuple[GateOutcome, ...]:
    """The requested gates against the measured mean CLIP score and single-stream p95 latency.

    Raises:
        ConfigError: A bound is negative or not finite.
    """
    gates: list[GateOutcome] = []
    for flag, bound in (("--min-clip-score", min_clip_score), ("--max-p95-seconds", max_p95_seconds)):
        if bound is not None and not (0 <= bound < float("inf")):
            raise ConfigError(f"{flag} {bound} must be a finite number >= 0")
    if min_clip_score is not None:
        gates.append(GateOutcome("clip_score", results.clip_score.mean, min_clip_score, ">="))
    if max_p95_seconds is not None:
        gates.append(GateOutcome("p95_seconds", results.summary.p95_seconds, max_p95_seconds, "<="))
    return tuple(gates)


def benchmark_properties(
    results: BenchmarkResults,
    *,
    report_uri: str,
    results_uri: str,
    gates: tuple[GateOutcome, ...],
    pipeline_run: str | None,
) -> dict[str, SupportedTypes]:
    """Custom properties for the model version: numbers as doubles and strings, provenance as strings."""
    summary = results.summary
    level = next((lvl for lvl in results.latency if lvl.concurrency == summary.latency_concurrency), None)
    numbers: dict[str, float | None] = {
        "benchmark_clip_score": results.clip_score.mean,
        "benchmark_p50_seconds": summary.p50_seconds,
        "benchmark_p95_seconds": summary.p95_seconds,
        "benchmark_images_per_second": summary.images_per_second,
        "benchmark_seconds_per_step": level.seconds_per_step if level else None,
        "benchmark_requests": float(summary.requests),
        "benchmark_errors": float(summary.errors),
    }
    properties = numbers_with_text(
        {key: (value, _as_text(key, value)) for key, value in numbers.items() if value is not None}
    )
    clip = results.clip_model
    settings = results.settings
    properties.update(
        {
            PROP_REPORT_URI: report_uri,
            PROP_RESULTS_URI: results_uri,
            PROP_CLIP_MODEL: f"{clip.id}@{clip.revision}" if clip.revision else clip.id,
            PROP_PROMPT_SET: f"{results.prompt_set.name} ({results.prompt_set.count} prompts)",
            PROP_PROMPT_SET_SHA256: results.prompt_set.sha256,
            PROP_SETTINGS: (
                f"{settings.width}x{settings.height}, {settings.steps} steps, "
                f"guidance {settings.guidance_scale:g}, "
                f"concurrency {','.join(str(c) for c in settings.concurrency)}, "
                f"{settings.requests_per_level} requests per level"
            ),
        }
    )
    properties.update(run_properties(results.created, gates=gates, pipeline_run=pipeline_run))
    return properties


def run_properties(
    created: datetime, *, gates: tuple[GateOutcome, ...], pipeline_run: str | None
) -> dict[str, SupportedTypes]:
    """The properties every publish writes: when the results were made, the gates, the PipelineRun."""
    properties: dict[str, SupportedTypes] = {
        PROP_CREATED: created.astimezone(UTC).isoformat().replace("+00:00", "Z")
    }
    if gates:
        properties[PROP_GATES] = "; ".join(gate.describe() for gate in gates)
    if pipeline_run:
        properties[PROP_PIPELINE_RUN] = pipeline_run
    return properties


def _as_text(key: str, value: float) -> str:
    if key in {"benchmark_requests", "benchmark_errors"}:
        return str(int(value))
    if key == "benchmark_clip_score":
        return f"{value:.2f}"
    return f"{value:.3f}"


def _upload_report(
    client: S3Client, results: BenchmarkResults, results_dir: Path, where: S3Location
) -> tuple[str, int]:
    """Render the report folder and upload it, page last; returns the page's name and the object count."""
    source_dir = results_dir if results_dir.is_dir() else results_dir.parent
    # Imported here: matplotlib costs a second, and `publish --help` or a refused flag never needs it.
    from modelpipe.report import render_report, upload_report

    return upload_report(
        client, where, lambda staging: render_report(results, source_dir / IMAGES_DIR, staging)
    )


def record_and_check(
    client: ModelRegistry,
    version_id: str,
    properties: Mapping[str, SupportedTypes],
    *,
    gates: tuple[GateOutcome, ...],
    report_uri: str,
    uploaded: int,
) -> bool:
    """Write the properties and labels to the version, then fail on a failed gate; True when validated.

    Gates are checked after publishing, so the numbers of a failed run are still visible.

    Raises:
        RegistryError: The update was refused.
        QualityGateError: A gate failed.
    """
    validated = bool(gates) and all(gate.passed for gate in gates)
    annotate_version(client, version_id, properties, validated=validated)
    log.info("published %d objects to %s and results to version %s", uploaded, report_uri, version_id)
    failed = [gate for gate in gates if not gate.passed]
    if failed:
        raise QualityGateError(
            "quality gate failed: " + "; ".join(gate.describe() for gate in failed),
            fix=f"results are published in {report_uri}; improve the model or relax the gate",
        )
    return validated


def annotate_version(
    client: ModelRegistry, version_id: str, properties: Mapping[str, SupportedTypes], *, validated: bool
) -> None:
    """Merge the properties and the ``benchmarked`` label into the version; ``validated`` when it passed.

    The label describes the latest results: an earlier pass does not survive a failed or ungated run.
    """
    labels = {LABEL_BENCHMARKED: "", **({LABEL_VALIDATED: ""} if validated else {})}
    update_version_properties(
        client,
        version_id,
        {**properties, **labels},
        remove=() if validated else (LABEL_VALIDATED,),
        rerun_hint="re-run publish; it overwrites the same report objects",
    )
