"""Small valid lm-eval and guidellm results, shared by the LLM unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelpipe.llm_results import EvaluationResults, LLMBenchmarkResults


def percentiles(base: float) -> dict[str, float]:
    return {"mean": base, "p50": base, "p90": base * 1.5, "p95": base * 2, "p99": base * 3}


def level(profile: str, concurrency: int, *, ttft: float, rps: float, tps: float) -> dict[str, Any]:
    return {
        "profile": profile,
        "concurrency": concurrency,
        "requests": 20,
        "errors": 0,
        "ttft_ms": percentiles(ttft),
        "itl_ms": percentiles(2.0),
        "tpot_ms": percentiles(2.5),
        "request_latency_seconds": percentiles(0.1),
        "requests_per_second": rps,
        "output_tokens_per_second": tps,
    }


def benchmark_dict() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "guidellm",
        "created": "2026-12-06T21:00:00Z",
        "endpoint": "http://127.0.0.1:8000",
        "model_name": "tiny-llm",
        "guidellm_version": "0.8.1",
        "settings": {
            "prompt_tokens": 64,
            "output_tokens": 32,
            "requests_per_level": 20,
            "concurrency": [1, 2],
            "request_format": "/v1/completions",
        },
        "levels": [
            level("synchronous", 1, ttft=10.0, rps=9.0, tps=290.0),
            level("concurrent", 2, ttft=14.0, rps=15.0, tps=480.0),
        ],
        "summary": {
            "ttft_p50_ms": 10.0,
            "ttft_p95_ms": 20.0,
            "itl_p50_ms": 2.0,
            "tpot_p50_ms": 2.5,
            "request_latency_p50_seconds": 0.1,
            "request_latency_p95_seconds": 0.2,
            "request_latency_p99_seconds": 0.3,
            "requests_per_second": 15.0,
            "output_tokens_per_second": 480.0,
            "requests": 40,
            "errors": 0,
        },
    }


def evaluation_dict() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "lm-eval",
        "created": "2026-12-06T20:59:00Z",
        "endpoint": "http://127.0.0.1:8000",
        "model_name": "tiny-llm",
        "lm_eval_version": "0.4.13",
        "limit": 20,
        "num_fewshot": None,
        "tokenizer": "/models/tiny-llm",
        "tasks": [
            {
                "name": "arc_easy",
                "output_type": "multiple_choice",
                "api": "completions",
                "samples": 20,
                "num_fewshot": 0,
                "prompt_sha256": "a" * 64,
                "data_sha256": None,
                "metrics": [
                    {"name": "acc", "filter": "none", "value": 0.25, "stderr": 0.0993},
                    {"name": "acc_norm", "filter": "none", "value": 0.3, "stderr": 0.1051},
                ],
            },
            {
                "name": "modelpipe_arith_gen",
                "output_type": "generate_until",
                "api": "chat-completions",
                "samples": 20,
                "num_fewshot": 0,
                "prompt_sha256": "b" * 64,
                "data_sha256": "c" * 64,
                "metrics": [{"name": "exact_match", "filter": "strip", "value": 0.0, "stderr": 0.0}],
            },
        ],
    }


def evaluation() -> EvaluationResults:
    return EvaluationResults.model_validate(evaluation_dict())


def benchmark() -> LLMBenchmarkResults:
    return LLMBenchmarkResults.model_validate(benchmark_dict())


CREATED = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
