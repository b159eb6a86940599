"""results.json schema: round trip, atomic save, clear errors on bad files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from modelpipe.benchmark_schema import BenchmarkResults
from modelpipe.errors import BenchmarkResultsError


def sample_results_dict(count: int = 3) -> dict[str, Any]:
    """A valid results.json as plain data (also used by the report tests)."""
    prompts = [f"prompt number {i} <b>&</b>" for i in range(count)]
    return {
        "schema_version": 1,
        "created": "2026-11-22T08:00:00Z",
        "endpoint": "http://127.0.0.1:8080",
        "model_name": "tiny-sd",
        "settings": {
            "steps": 2,
            "width": 64,
            "height": 64,
            "guidance_scale": 7.5,
            "seeds": [1000 + i for i in range(count)],
            "concurrency": [1, 2],
            "requests_per_level": 4,
            "warmup": 1,
            "timeout_seconds": 60.0,
        },
        "prompt_set": {"name": "default", "sha256": "a" * 64, "count": count},
        "clip_model": {
            "source": "/models/tiny-clip",
            "id": "tiny-clip",
            "revision": None,
        },
        "clip_score": {
            "mean": 21.5,
            "scored": count,
            "failed": 0,
            "per_prompt": [
                {
                    "index": i,
                    "prompt": p,
                    "seed": 1000 + i,
                    "image": f"{i:03d}.png",
                    "clip_score": 21.5,
                }
                for i, p in enumerate(prompts)
            ],
        },
        "latency": [
            {
                "concurrency": c,
                "requests": 4,
                "succeeded": 4 - (c == 2),
                "errors": int(c == 2),
                "error_samples": ["HTTP 503: overloaded"] if c == 2 else [],
                "p50_seconds": 0.2 * c,
                "p90_seconds": 0.3 * c,
                "p95_seconds": 0.35 * c,
                "p99_seconds": 0.4 * c,
                "mean_seconds": 0.25 * c,
                "min_seconds": 0.1 * c,
                "max_seconds": 0.4 * c,
                "wall_seconds": 1.0,
                "images_per_second": 4.0 - (c == 2),
                "seconds_per_step": 0.1 * c,
            }
            for c in (1, 2)
        ],
        "summary": {
            "p50_seconds": 0.2,
            "p95_seconds": 0.35,
            "latency_concurrency": 1,
            "images_per_second": 4.0,
            "throughput_concurrency": 1,
            "requests": 8,
            "errors": 1,
        },
        "images": [f"{i:03d}.png" for i in range(count)],
    }


def test_save_then_load_round_trips_every_field(tmp_path: Path) -> None:
    results = BenchmarkResults.model_validate(sample_results_dict())
    path = results.save(tmp_path / "out" / "results.json")
    loaded = BenchmarkResults.load(path)
    assert loaded == results
    assert loaded.created == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    assert loaded.latency[1].error_samples == ["HTTP 503: overloaded"]


def test_load_accepts_the_output_folder(tmp_path: Path) -> None:
    BenchmarkResults.model_validate(sample_results_dict()).save(tmp_path / "results.json")
    assert BenchmarkResults.load(tmp_path).model_name == "tiny-sd"


def test_save_leaves_no_temp_files(tmp_path: Path) -> None:
    BenchmarkResults.model_validate(sample_results_dict()).save(tmp_path / "results.json")
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_save_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("x" * 100_000)
    BenchmarkResults.model_validate(sample_results_dict()).save(path)
    assert json.loads(path.read_text())["model_name"] == "tiny-sd"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkResultsError, match=r"results\.json not found"):
        BenchmarkResults.load(tmp_path / "results.json")


def test_truncated_json_is_reported_as_not_json(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(sample_results_dict())[:200])
    with pytest.raises(BenchmarkResultsError, match="is not JSON"):
        BenchmarkResults.load(path)


def test_missing_field_is_named(tmp_path: Path) -> None:
    data = sample_results_dict()
    del data["summary"]["p95_seconds"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BenchmarkResultsError, match=r"summary\.p95_seconds: Field required"):
        BenchmarkResults.load(path)


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    data = sample_results_dict()
    data["schema_version"] = 2
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BenchmarkResultsError, match="schema_version 2"):
        BenchmarkResults.load(path)


def test_unknown_fields_are_refused() -> None:
    data = sample_results_dict()
    data["settings"]["stepz"] = 3
    with pytest.raises(ValueError, match="stepz"):
        BenchmarkResults.model_validate(data)


def test_non_finite_clip_score_is_refused() -> None:
    data = sample_results_dict()
    data["clip_score"]["per_prompt"][0]["clip_score"] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        BenchmarkResults.model_validate(data)


def test_latency_counts_must_add_up() -> None:
    data = sample_results_dict()
    data["latency"][0]["errors"] = 2
    with pytest.raises(ValueError, match=r"succeeded 4 \+ errors 2 != requests 4"):
        BenchmarkResults.model_validate(data)


def test_prompt_count_must_match_scores_and_seeds() -> None:
    data = sample_results_dict()
    data["prompt_set"]["count"] = 4
    with pytest.raises(ValueError, match=r"prompt_set\.count is 4"):
        BenchmarkResults.model_validate(data)


def test_image_names_cannot_escape_the_images_folder() -> None:
    data = sample_results_dict()
    data["images"][0] = "../../etc/passwd"
    with pytest.raises(ValueError, match="plain file name"):
        BenchmarkResults.model_validate(data)


def test_failed_prompt_is_counted_as_failed() -> None:
    data = sample_results_dict()
    entry = data["clip_score"]["per_prompt"][1]
    entry.update(image=None, clip_score=None, error="HTTP 500")
    with pytest.raises(ValueError, match="disagree"):
        BenchmarkResults.model_validate(data)
    data["clip_score"].update(scored=2, failed=1)
    assert BenchmarkResults.model_validate(data).clip_score.failed == 1


def test_published_json_schema_accepts_a_saved_file_and_rejects_a_broken_one(tmp_path: Path) -> None:
    import jsonschema

    schema = BenchmarkResults.model_json_schema(mode="serialization")
    path = BenchmarkResults.model_validate(sample_results_dict()).save(tmp_path / "results.json")
    saved = json.loads(path.read_text())
    jsonschema.validate(saved, schema)
    del saved["latency"][0]["p50_seconds"]
    with pytest.raises(jsonschema.ValidationError, match="p50_seconds"):
        jsonschema.validate(saved, schema)
