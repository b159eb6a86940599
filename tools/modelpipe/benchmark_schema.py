"""The documented schema of ``results.json``, written by ``modelpipe benchmark`` and read by ``publish``.

Layout of a benchmark output folder (``--benchmark-dir DIR``)::

    DIR/results.json          BenchmarkResults (this module), schema_version 1
    DIR/images/000.png ...    one PNG per prompt, generated with the seed recorded next to it

``results.json`` (all times in seconds, all rates per second)::

    {
      "schema_version": 1,
      "created": "2026-11-22T08:00:00Z",
      "endpoint": "http://host:8080",            # no user:password, no query string
      "model_name": "tiny-sd",                    # served model name (KServe V1 route)
      "settings": {"steps": 2, "width": 64, "height": 64, "guidance_scale": 7.5,
                   "seeds": [1000, 1001, ...],    # one per prompt, in prompt order
                   "concurrency": [1, 2, 4, 8], "requests_per_level": 16, "warmup": 2,
                   "timeout_seconds": 600.0},
      "prompt_set": {"name": "default", "sha256": "...", "count": 32},
      "clip_model": {"source": "hf://openai/clip-vit-base-patch16", "id": "openai/clip-vit-base-patch16",
                     "revision": null},
      "clip_score": {"mean": 30.1, "scored": 32, "failed": 0,
                     "per_prompt": [{"index": 0, "prompt": "...", "seed": 1000, "image": "000.png",
                                     "clip_score": 31.2, "error": null}, ...]},
      "latency": [{"concurrency": 1, "requests": 16, "succeeded": 16, "errors": 0, "error_samples": [],
                   "p50_seconds": 1.1, "p90_seconds": 1.2, "p95_seconds": 1.3, "p99_seconds": 1.4,
                   "mean_seconds": 1.1, "min_seconds": 1.0, "max_seconds": 1.4,
                   "wall_seconds": 17.9, "images_per_second": 0.89, "seconds_per_step": 0.022}, ...],
      "summary": {"p50_seconds": 1.1, "p95_seconds": 1.3, "latency_concurrency": 1,
                  "images_per_second": 2.9, "throughput_concurrency": 4, "requests": 64, "errors": 0},
      "images": ["000.png", "001.png", ...]
    }

Meaning of the summary: ``p50_seconds``/``p95_seconds`` are single-stream latency, taken from the lowest
concurrency level that had successful requests (``latency_concurrency``); ``images_per_second`` is the peak
throughput over all levels (reached at ``throughput_concurrency``). ``prompt_set.sha256`` is the sha256 of the
parsed prompts joined by ``\\n`` (UTF-8), so comments and blank lines in a prompt file do not change it.
CLIP scores are only comparable with the same ``clip_model`` and ``prompt_set``. The machine-readable form
is ``BenchmarkResults.model_json_schema(mode="serialization")`` (JSON Schema); unknown fields are refused.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelpipe.errors import BenchmarkResultsError
from modelpipe.files import write_text_atomic

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
IMAGES_DIR = "images"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class BenchmarkSettings(_Strict):
    """How images were requested."""

    steps: int = Field(gt=0, description="num_inference_steps sent with every request")
    width: int = Field(gt=0, description="image width in pixels")
    height: int = Field(gt=0, description="image height in pixels")
    guidance_scale: float = Field(ge=0, description="classifier-free guidance scale sent with every request")
    seeds: list[int] = Field(description="seed of each CLIP-score image, in prompt order")
    concurrency: list[int] = Field(min_length=1, description="concurrency levels of the latency sweep")
    requests_per_level: int = Field(gt=0, description="timed requests at each concurrency level")
    warmup: int = Field(ge=0, description="untimed requests sent before the sweep")
    timeout_seconds: float = Field(gt=0, description="per-request timeout")

    @field_validator("concurrency")
    @classmethod
    def _positive_levels(cls, levels: list[int]) -> list[int]:
        if any(level < 1 for level in levels):
            raise ValueError("concurrency levels must be >= 1")
        return levels


class PromptSet(_Strict):
    """Which prompts were scored."""

    name: str = Field(min_length=1, description="'default' for the built-in set, else the prompt file's name")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the prompts joined by newlines")
    count: int = Field(gt=0, description="number of prompts")


class ClipModelInfo(_Strict):
    """Which CLIP model scored the images (scores are only comparable within one model)."""

    source: str = Field(min_length=1, description="hf://ORG/REPO[@REV], s3://BUCKET/PREFIX or a folder")
    id: str = Field(min_length=1, description="model id: the HF repo id, else the folder or prefix name")
    revision: str | None = Field(default=None, description="resolved HF revision when known")


class PromptScore(_Strict):
    """One prompt's image and its CLIP score (or why it has none)."""

    index: int = Field(ge=0)
    prompt: str
    seed: int
    image: str | None = Field(description="file name under images/, None when generation failed")
    clip_score: float | None = Field(description="CLIP score of this image, None when generation failed")
    error: str | None = Field(default=None, description="why generation failed (no secrets)")

    @field_validator("clip_score")
    @classmethod
    def _finite_score(cls, value: float | None) -> float | None:
        return _finite(value)


class ClipScoreResult(_Strict):
    """torchmetrics CLIPScore over the prompt set: max(100 * cosine(image, text), 0)."""

    mean: float = Field(ge=0, description="mean CLIP score over the scored images")
    scored: int = Field(gt=0, description="images that were generated and scored")
    failed: int = Field(ge=0, description="prompts whose image could not be generated")
    per_prompt: list[PromptScore]

    @field_validator("mean")
    @classmethod
    def _finite_mean(cls, value: float) -> float:
        _finite(value)
        return value

    @model_validator(mode="after")
    def _counts_match(self) -> ClipScoreResult:
        scored = sum(1 for p in self.per_prompt if p.clip_score is not None)
        if scored != self.scored or len(self.per_prompt) != self.scored + self.failed:
            raise ValueError(
                f"scored={self.scored}, failed={self.failed} disagree with {len(self.per_prompt)} "
                f"per_prompt entries ({scored} scored)"
            )
        return self


class LatencyLevel(_Strict):
    """Latency and throughput at one concurrency level (percentiles None when every request failed)."""

    concurrency: int = Field(ge=1)
    requests: int = Field(ge=0, description="timed requests sent")
    succeeded: int = Field(ge=0)
    errors: int = Field(ge=0)
    error_samples: list[str] = Field(default_factory=list, description="a few distinct error messages")
    p50_seconds: float | None
    p90_seconds: float | None
    p95_seconds: float | None
    p99_seconds: float | None
    mean_seconds: float | None
    min_seconds: float | None
    max_seconds: float | None
    wall_seconds: float = Field(ge=0, description="time from the first request sent to the last answer")
    images_per_second: float = Field(ge=0, description="successful images / wall_seconds")
    seconds_per_step: float | None = Field(description="p50_seconds / steps")

    @model_validator(mode="after")
    def _consistent(self) -> LatencyLevel:
        if self.succeeded + self.errors != self.requests:
            raise ValueError(f"succeeded {self.succeeded} + errors {self.errors} != requests {self.requests}")
        stats = (self.p50_seconds, self.p90_seconds, self.p95_seconds, self.p99_seconds)
        if self.succeeded and any(v is None for v in stats):
            raise ValueError("percentiles are required when requests succeeded")
        for value in (*stats, self.mean_seconds, self.min_seconds, self.max_seconds, self.seconds_per_step):
            _finite(value)
        return self


class BenchmarkSummary(_Strict):
    """The headline numbers (also the Tekton results P50_SECONDS, P95_SECONDS, IMAGES_PER_SECOND)."""

    p50_seconds: float = Field(ge=0, description="p50 latency at latency_concurrency")
    p95_seconds: float = Field(ge=0, description="p95 latency at latency_concurrency")
    latency_concurrency: int = Field(ge=1, description="lowest concurrency level with successful requests")
    images_per_second: float = Field(ge=0, description="peak throughput over all levels")
    throughput_concurrency: int = Field(ge=1, description="level where the peak throughput was reached")
    requests: int = Field(ge=0, description="timed requests over all levels")
    errors: int = Field(ge=0, description="failed timed requests over all levels")


class BenchmarkResults(_Strict):
    """Everything one benchmark run measured; see the module docstring for an example."""

    schema_version: Literal[1] = 1
    created: datetime = Field(description="when the run finished (UTC)")
    endpoint: str = Field(min_length=1, description="endpoint base URL without credentials or query")
    model_name: str = Field(min_length=1, description="served model name")
    settings: BenchmarkSettings
    prompt_set: PromptSet
    clip_model: ClipModelInfo
    clip_score: ClipScoreResult
    latency: list[LatencyLevel] = Field(min_length=1)
    summary: BenchmarkSummary
    images: list[str] = Field(description="file names under images/, in prompt order")

    @field_validator("created")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("images")
    @classmethod
    def _plain_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name or "/" in name or "\\" in name or name in {".", ".."}:
                raise ValueError(f"image name {name!r} must be a plain file name")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkResults:
        if len(self.clip_score.per_prompt) != self.prompt_set.count:
            raise ValueError(
                f"clip_score has {len(self.clip_score.per_prompt)} prompts, prompt_set.count is "
                f"{self.prompt_set.count}"
            )
        if len(self.settings.seeds) != self.prompt_set.count:
            raise ValueError(f"{len(self.settings.seeds)} seeds for {self.prompt_set.count} prompts")
        return self

    @classmethod
    def load(cls, path: Path) -> BenchmarkResults:
        """Read and validate a results.json (or a benchmark output folder containing one).

        Raises:
            BenchmarkResultsError: The file is missing, not JSON, or does not match the schema.
        """
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise BenchmarkResultsError(
                f"benchmark results {path} not found",
                fix="pass the folder `modelpipe benchmark --benchmark-dir` wrote",
            ) from err
        except (OSError, UnicodeDecodeError) as err:
            raise BenchmarkResultsError(f"benchmark results {path} unreadable: {err}") from err
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise BenchmarkResultsError(
                f"benchmark results {path} is not JSON (line {err.lineno}: {err.msg})",
                fix="re-run `modelpipe benchmark`",
            ) from err
        if isinstance(data, dict) and data.get("schema_version") not in (None, SCHEMA_VERSION):
            raise BenchmarkResultsError(
                f"benchmark results {path} has schema_version {data.get('schema_version')!r}, "
                f"this modelpipe reads {SCHEMA_VERSION}",
                fix="use the modelpipe version that wrote it",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()[:5]
            )
            more = f" (+{err.error_count() - 5} more)" if err.error_count() > 5 else ""
            raise BenchmarkResultsError(
                f"benchmark results {path} do not match schema v{SCHEMA_VERSION}: {problems}{more}",
                fix="re-run `modelpipe benchmark`",
            ) from err

    def save(self, path: Path) -> Path:
        """Write atomically (temp file + rename in the same folder), so readers never see half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, self.model_dump_json(indent=2) + "\n")
        return path
