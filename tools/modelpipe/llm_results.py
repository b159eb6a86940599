"""The documented ``results.json`` schemas of the language-model path: lm-eval scores and guidellm figures.

``modelpipe evaluate --eval-dir DIR`` writes ``DIR/results.json`` (:class:`EvaluationResults`, kind
``lm-eval``) next to lm-eval's own output under ``DIR/lm-eval/``; ``modelpipe benchmark --model-kind
text-generation --benchmark-dir DIR`` writes ``DIR/results.json`` (:class:`LLMBenchmarkResults`, kind
``guidellm``) next to guidellm's report under ``DIR/guidellm/``. ``modelpipe publish`` reads both.

Evaluation (``kind: lm-eval``)::

    {"schema_version": 1, "kind": "lm-eval", "created": "2026-12-06T21:00:00Z",
     "endpoint": "http://127.0.0.1:8000", "model_name": "tiny-llm", "lm_eval_version": "0.4.13",
     "limit": 20, "num_fewshot": null, "tokenizer": "/workspace/model",
     "tasks": [{"name": "arc_easy", "output_type": "multiple_choice", "api": "completions",
                "samples": 20, "num_fewshot": 0, "prompt_sha256": "...", "data_sha256": null,
                "metrics": [{"name": "acc", "filter": "none", "value": 0.25, "stderr": 0.09}, ...]}]}

``prompt_sha256`` is lm-eval's hash of the evaluated documents, prompts and targets (``task_hashes``), so two
runs with the same value scored the same questions; ``data_sha256`` is the sha256 of a bundled task's JSONL.

Load test (``kind: guidellm``; milliseconds for token timings, seconds for request latency)::

    {"schema_version": 1, "kind": "guidellm", "created": "...", "endpoint": "...", "model_name": "...",
     "guidellm_version": "0.8.1",
     "settings": {"prompt_tokens": 64, "output_tokens": 32, "requests_per_level": 20,
                  "concurrency": [2, 4], "request_format": "/v1/completions"},
     "levels": [{"profile": "synchronous", "concurrency": 1, "requests": 20, "errors": 0,
                 "ttft_ms": {"mean": 9.7, "p50": 9.5, "p90": ..., "p95": ..., "p99": ...},
                 "itl_ms": {...}, "tpot_ms": {...}, "request_latency_seconds": {...},
                 "requests_per_second": 10.8, "output_tokens_per_second": 347.0}, ...],
     "summary": {"ttft_p50_ms": ..., "ttft_p95_ms": ..., "itl_p50_ms": ..., "tpot_p50_ms": ...,
                 "request_latency_p50_seconds": ..., "request_latency_p95_seconds": ...,
                 "request_latency_p99_seconds": ..., "requests_per_second": ...,
                 "output_tokens_per_second": ..., "requests": 60, "errors": 0}}

Latency figures in ``summary`` come from the synchronous level (one request at a time); the two rates are
the peak over all levels. Unknown fields are refused.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelpipe.errors import BenchmarkResultsError
from modelpipe.files import write_text_atomic

SCHEMA_VERSION: Literal[1] = 1
RESULTS_FILE = "results.json"
KIND_LM_EVAL: Literal["lm-eval"] = "lm-eval"
KIND_GUIDELLM: Literal["guidellm"] = "guidellm"
HEADLINE_METRICS = ("acc", "exact_match", "acc_norm", "f1", "bleu")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricValue(_Strict):
    """One lm-eval metric of a task under one filter (``acc,none`` is name ``acc``, filter ``none``)."""

    name: str
    filter: str
    value: float
    stderr: float | None = Field(description="standard error; None when lm-eval reports N/A")

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class TaskScore(_Strict):
    """The scores of one lm-eval task."""

    name: str
    output_type: str
    api: Literal["completions", "chat-completions"]
    samples: int = Field(ge=0, description="documents evaluated (after --limit)")
    num_fewshot: int | None
    prompt_sha256: str | None
    data_sha256: str | None
    metrics: list[MetricValue]

    def headline(self) -> MetricValue | None:
        """The metric a dashboard shows first: acc, else exact_match, else the first one reported."""
        for name in HEADLINE_METRICS:
            found = self.metric(name)
            if found is not None:
                return found
        return self.metrics[0] if self.metrics else None

    def metric(self, name: str) -> MetricValue | None:
        """The metric ``name``, preferring the unfiltered (``none``) variant."""
        found = [m for m in self.metrics if m.name == name]
        return next((m for m in found if m.filter == "none"), found[0] if found else None)


class _Results(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    created: datetime
    endpoint: str
    model_name: str

    @classmethod
    def load(cls, folder: Path) -> Self:
        """Read and validate ``folder/results.json`` (or the file itself).

        Raises:
            BenchmarkResultsError: The file is missing or does not match the schema.
        """
        path = folder / RESULTS_FILE if folder.is_dir() else folder
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise BenchmarkResultsError(
                f"{path} not found", fix=f"pass the folder {cls._writer()} wrote"
            ) from err
        except OSError as err:
            raise BenchmarkResultsError(f"{path} cannot be read: {err}") from err
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise BenchmarkResultsError(
                f"{path} is not a valid {cls.__name__} file: {where}: {first['msg']}",
                fix=f"re-run {cls._writer()}",
            ) from err

    @classmethod
    def _writer(cls) -> str:
        return "modelpipe"

    def save(self, path: Path) -> Path:
        """Write atomically as indented JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, self.model_dump_json(indent=2) + "\n")
        return path


class EvaluationResults(_Results):
    """lm-eval scores of a live endpoint, one entry per task."""

    kind: Literal["lm-eval"] = KIND_LM_EVAL
    lm_eval_version: str
    limit: int | None
    num_fewshot: int | None
    tokenizer: str
    tasks: list[TaskScore] = Field(min_length=1)

    @classmethod
    def _writer(cls) -> str:
        return "`modelpipe evaluate`"


class Percentiles(_Strict):
    """Distribution of one timing over the successful requests of a level."""

    mean: float
    p50: float
    p90: float
    p95: float
    p99: float


class LoadLevel(_Strict):
    """One guidellm benchmark: a synchronous run or a fixed number of concurrent streams."""

    profile: Literal["synchronous", "concurrent"]
    concurrency: int = Field(ge=1)
    requests: int = Field(ge=0, description="successful requests")
    errors: int = Field(ge=0, description="errored plus incomplete requests")
    ttft_ms: Percentiles
    itl_ms: Percentiles
    tpot_ms: Percentiles
    request_latency_seconds: Percentiles
    requests_per_second: float
    output_tokens_per_second: float


class LoadSettings(_Strict):
    """How the load was generated."""

    prompt_tokens: int
    output_tokens: int
    requests_per_level: int
    concurrency: list[int]
    request_format: str


class LoadSummary(_Strict):
    """Headline figures: single-stream latency, peak rates, totals."""

    ttft_p50_ms: float
    ttft_p95_ms: float
    itl_p50_ms: float
    tpot_p50_ms: float
    request_latency_p50_seconds: float
    request_latency_p95_seconds: float
    request_latency_p99_seconds: float
    requests_per_second: float
    output_tokens_per_second: float
    requests: int
    errors: int


class LLMBenchmarkResults(_Results):
    """guidellm figures of a live OpenAI-compatible endpoint."""

    kind: Literal["guidellm"] = KIND_GUIDELLM
    guidellm_version: str
    settings: LoadSettings
    levels: list[LoadLevel] = Field(min_length=1)
    summary: LoadSummary

    @classmethod
    def _writer(cls) -> str:
        return "`modelpipe benchmark --model-kind text-generation`"


def results_kind(folder: Path) -> str | None:
    """The ``kind`` recorded in ``folder/results.json`` (None for the image benchmark's schema or no file)."""
    path = folder / RESULTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def utc_now() -> datetime:
    """The creation stamp of a results file, to the second (report folders are named after it)."""
    return datetime.now(UTC).replace(microsecond=0)
