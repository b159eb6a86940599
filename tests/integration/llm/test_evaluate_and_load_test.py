"""lm-eval and guidellm against the real vLLM server on the tiny LLM (the session's `llm_server`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from modelpipe.eval_tools import OFFLINE_ENV, EvalTools
from modelpipe.llm_results import EvaluationResults, LLMBenchmarkResults
from modelpipe.steps.benchmark_llm import benchmark_llm
from modelpipe.steps.evaluate import BUNDLED_TASKS_DIR, evaluate_model

from tests.fixtures.llm import LlmServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


MC_TASKS = ["modelpipe_science_mc", "modelpipe_sentence_mc"]
LIMIT = 6


def _direct_lm_eval(tools: EvalTools, server: LlmServer, out: Path) -> dict[str, dict[str, float]]:
    """lm_eval run by hand, as its documentation shows, on the same tasks, limit and tokenizer."""
    endpoint = server.endpoint_url
    model_args = (
        f"model={server.model_name},base_url={endpoint}/v1/completions,"
        f"tokenizer_backend=huggingface,tokenizer={server.model_dir},max_length=512"
    )
    subprocess.run(
        [
            str(tools.bin_dir / "lm_eval"),
            "run",
            "--model",
            "local-completions",
            "--model_args",
            model_args,
            "--tasks",
            ",".join(MC_TASKS),
            "--include_path",
            str(BUNDLED_TASKS_DIR),
            "--limit",
            str(LIMIT),
            "--output_path",
            str(out / "direct.json"),
        ],
        cwd=BUNDLED_TASKS_DIR,
        env={**os.environ, **OFFLINE_ENV},
        check=True,
        capture_output=True,
        timeout=900,
    )
    (found,) = out.glob("direct*.json")
    results = json.loads(found.read_text(encoding="utf-8"))["results"]
    return {
        task: {key: value for key, value in results[task].items() if key.endswith(",none")}
        for task in MC_TASKS
    }


def test_evaluate_scores_like_a_direct_lm_eval_call(
    llm_server: LlmServer, eval_tools: EvalTools, tmp_path: Path
) -> None:
    outcome = evaluate_model(
        endpoint=llm_server.endpoint_url,
        model_name=llm_server.model_name,
        tokenizer_dir=llm_server.model_dir,
        tasks=MC_TASKS,
        eval_dir=tmp_path / "eval",
        tools=eval_tools,
        environ=os.environ,
        limit=LIMIT,
        max_length=512,
    )
    saved = EvaluationResults.load(tmp_path / "eval")
    assert saved == outcome.results
    direct = _direct_lm_eval(eval_tools, llm_server, tmp_path)
    for task in saved.tasks:
        assert task.samples == LIMIT and task.api == "completions"
        for metric in task.metrics:
            assert metric.value == pytest.approx(direct[task.name][f"{metric.name},none"], abs=1e-9)
            assert metric.stderr == pytest.approx(direct[task.name][f"{metric.name}_stderr,none"], abs=1e-9)
        assert task.data_sha256 and task.prompt_sha256


def test_generation_task_goes_through_chat_completions(
    llm_server: LlmServer, eval_tools: EvalTools, tmp_path: Path
) -> None:
    outcome = evaluate_model(
        endpoint=llm_server.endpoint_url,
        model_name=llm_server.model_name,
        tokenizer_dir=llm_server.model_dir,
        tasks=["modelpipe_arith_gen"],
        eval_dir=tmp_path / "eval",
        tools=eval_tools,
        environ=os.environ,
        limit=3,
        max_length=512,
    )
    (task,) = outcome.results.tasks
    assert (task.name, task.api, task.output_type, task.samples) == (
        "modelpipe_arith_gen",
        "chat-completions",
        "generate_until",
        3,
    )
    assert task.metric("exact_match") is not None


def test_guidellm_figures_are_parsed_into_results_json(
    llm_server: LlmServer, eval_tools: EvalTools, tmp_path: Path
) -> None:
    outcome = benchmark_llm(
        endpoint=llm_server.endpoint_url,
        model_name=llm_server.model_name,
        tokenizer_dir=llm_server.model_dir,
        benchmark_dir=tmp_path / "bench",
        tools=eval_tools,
        environ=os.environ,
        concurrency=(1, 2),
        requests=4,
        prompt_tokens=16,
        output_tokens=8,
    )
    saved = LLMBenchmarkResults.load(tmp_path / "bench")
    assert saved == outcome.results
    assert [(level.profile, level.concurrency) for level in saved.levels] == [
        ("synchronous", 1),
        ("concurrent", 2),
    ]
    for level in saved.levels:
        assert level.requests == 4 and level.errors == 0
        assert 0 < level.ttft_ms.p50 <= level.ttft_ms.p99
        assert level.itl_ms.p50 > 0 and level.output_tokens_per_second > 0
    assert saved.summary.ttft_p50_ms == saved.levels[0].ttft_ms.p50
    assert (tmp_path / "bench" / "guidellm" / "synchronous.json").is_file()
