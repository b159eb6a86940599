"""evaluate and the LLM benchmark: lm-eval/guidellm output parsing, argv, task lookup, CLI glue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from modelpipe import cli
from modelpipe.errors import ConfigError, EvaluationError, UnknownTaskError
from modelpipe.eval_tools import EvalTools, tool_env
from modelpipe.steps import benchmark_llm, evaluate
from modelpipe.steps.evaluate import OFFLINE_TASKS

from tests.unit.steps import llm_samples

DATA = Path(__file__).parent / "data"


def _json(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def test_lm_eval_output_becomes_one_score_per_task_with_stderr() -> None:
    scores = evaluate.parse_task_scores(
        _json("lm_eval_results.json"), ["modelpipe_science_mc", "modelpipe_sentence_mc"], api="completions"
    )
    science = next(task for task in scores if task.name == "modelpipe_science_mc")
    acc = science.metric("acc")
    assert acc is not None and (acc.value, round(acc.stderr or 0, 4)) == (0.3, 0.1528)
    assert science.samples == 10 and science.output_type == "multiple_choice"
    assert science.prompt_sha256 and len(science.prompt_sha256) == 64
    # The bundled data file is hashed, so a changed JSONL shows up as a different version of the task.
    assert science.data_sha256 and len(science.data_sha256) == 64
    assert {m.name for m in science.metrics} == {"acc", "acc_norm"}


def test_a_task_lm_eval_did_not_report_is_an_error() -> None:
    with pytest.raises(EvaluationError, match="arc_easy"):
        evaluate.parse_task_scores(_json("lm_eval_results.json"), ["arc_easy"], api="completions")


def test_bundled_tasks_need_no_registry_scan(tmp_path: Path) -> None:
    # No python in this folder: a probe run would fail, so passing proves it was skipped.
    types = evaluate.lookup_tasks(
        EvalTools(tmp_path), list(OFFLINE_TASKS), [evaluate.BUNDLED_TASKS_DIR], env={}, work_dir=tmp_path
    )
    assert types == {
        "modelpipe_science_mc": "multiple_choice",
        "modelpipe_sentence_mc": "multiple_choice",
        "modelpipe_arith_gen": "generate_until",
    }


def test_unknown_task_from_the_registry_lookup_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_run(argv: list[Any], **kwargs: Any) -> None:
        out = Path(argv[argv.index("--out") + 1])
        out.write_text(json.dumps({"unknown": ["arc_eazy"], "output_types": {}}), encoding="utf-8")

    monkeypatch.setattr(evaluate, "run_tool", fake_run)
    with pytest.raises(UnknownTaskError, match="arc_eazy") as err:
        evaluate.lookup_tasks(EvalTools(tmp_path), ["arc_eazy"], [], env={}, work_dir=tmp_path)
    assert err.value.fix is not None and "modelpipe_science_mc" in err.value.fix


def test_unknown_task_fails_before_the_endpoint_is_contacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_tokenizer: Path
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> dict[str, str]:
        raise UnknownTaskError("unknown lm-eval task(s): nope")

    def contacted(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the endpoint was contacted")

    monkeypatch.setattr(evaluate, "lookup_tasks", refuse)
    monkeypatch.setattr(evaluate, "check_served", contacted)
    with pytest.raises(UnknownTaskError):
        evaluate.evaluate_model(
            endpoint="http://127.0.0.1:9",
            model_name="m",
            tokenizer_dir=tiny_tokenizer,
            tasks=["nope"],
            eval_dir=tmp_path / "eval",
            tools=EvalTools(tmp_path),
            environ={},
        )


@pytest.fixture
def tiny_tokenizer(tmp_path: Path) -> Path:
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    return folder


def test_multiple_choice_goes_to_completions_and_generation_to_chat(
    tmp_path: Path, tiny_tokenizer: Path
) -> None:
    groups = evaluate._by_api(
        {"arc_easy": "multiple_choice", "gsm8k": "generate_until", "mmlu": "mixed"}, "chat-completions"
    )
    assert groups == {"completions": ["arc_easy", "mmlu"], "chat-completions": ["gsm8k"]}
    tools = EvalTools(tmp_path)
    (tmp_path / "lm_eval").write_text("#!/bin/sh\n", encoding="utf-8")
    (tmp_path / "lm_eval").chmod(0o755)
    argv = evaluate._lm_eval_argv(
        tools,
        api="chat-completions",
        base_url="http://127.0.0.1:8000/v1",
        model_name="tiny-llm",
        tokenizer_dir=tiny_tokenizer,
        tasks=["gsm8k"],
        includes=[evaluate.BUNDLED_TASKS_DIR],
        out_dir=tmp_path / "out",
        limit=5,
        num_fewshot=None,
        num_concurrent=2,
        max_length=512,
        request_timeout_seconds=60,
    )
    text = " ".join(str(part) for part in argv)
    assert "--model local-chat-completions" in text and "--apply_chat_template" in text
    assert "base_url=http://127.0.0.1:8000/v1/chat/completions" in text
    assert f"tokenizer={tiny_tokenizer.resolve()}" in text and "tokenizer_backend=huggingface" in text
    assert "--limit 5" in text and "--log_samples" in text and "--num_fewshot" not in text


@pytest.mark.parametrize(
    ("endpoint", "base"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/", "http://h:8000/v1"),
        ("https://h/v1", "https://h/v1"),
    ],
)
def test_api_base_adds_v1_once(endpoint: str, base: str) -> None:
    assert evaluate.api_base(endpoint) == base


def test_tools_never_see_storage_or_registry_secrets_and_run_offline() -> None:
    env = tool_env(
        {"AWS_SECRET_ACCESS_KEY": "s", "AWS_ACCESS_KEY_ID": "k", "MODEL_REGISTRY_TOKEN": "t", "PATH": "/bin"},
        offline=True,
    )
    assert env == {
        "PATH": "/bin",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def test_guidellm_report_becomes_levels_with_percentiles() -> None:
    levels = benchmark_llm.parse_levels(_json("guidellm_concurrent.json"))
    assert [(level.profile, level.concurrency) for level in levels] == [("concurrent", 2), ("concurrent", 4)]
    first = levels[0]
    assert first.requests == 10 and first.errors == 0
    assert 0 < first.ttft_ms.p50 <= first.ttft_ms.p95 <= first.ttft_ms.p99
    assert first.request_latency_seconds.p50 > 0 and first.output_tokens_per_second > 0
    assert benchmark_llm.guidellm_version(_json("guidellm_concurrent.json")) == "0.8.1"


def test_summary_takes_latency_from_one_stream_and_peak_rates() -> None:
    levels = llm_samples.benchmark().levels
    summary = benchmark_llm.summarize(levels)
    assert summary.ttft_p50_ms == 10.0  # the synchronous level
    assert summary.output_tokens_per_second == 480.0  # the best level
    assert (summary.requests, summary.errors) == (40, 0)


def test_a_report_without_benchmarks_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text('{"benchmarks": []}', encoding="utf-8")
    with pytest.raises(EvaluationError, match="no benchmarks"):
        benchmark_llm.read_report(tmp_path / "r.json")


def test_evaluate_cli_passes_flags_and_prints_scores(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_tokenizer: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def fake(**kwargs: Any) -> evaluate.EvaluateOutcome:
        seen.update(kwargs)
        return evaluate.EvaluateOutcome(llm_samples.evaluation(), tmp_path / "results.json")

    monkeypatch.setattr(evaluate, "evaluate_model", fake)
    code = cli.main(
        [
            "evaluate",
            "--endpoint",
            "http://127.0.0.1:8000",
            "--model-name",
            "tiny-llm",
            "--tokenizer",
            str(tiny_tokenizer),
            "--tasks",
            "arc_easy, modelpipe_arith_gen",
            "--limit",
            "20",
            "--eval-dir",
            str(tmp_path),
            "--eval-bin",
            str(tmp_path),
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    assert code == 0
    assert seen["tasks"] == ["arc_easy", "modelpipe_arith_gen"] and seen["limit"] == 20
    assert seen["tokenizer_dir"] == tiny_tokenizer.resolve()
    scores = json.loads((tmp_path / "results" / "EVAL_SCORES").read_text(encoding="utf-8"))
    assert scores == {"arc_easy": 0.25, "modelpipe_arith_gen": 0.0}
    assert "acc=0.2500 ± 0.0993" in capsys.readouterr().out


def test_evaluate_cli_refuses_a_folder_without_tokenizer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "evaluate",
            "--endpoint",
            "http://127.0.0.1:8000",
            "--model-name",
            "m",
            "--tokenizer",
            str(tmp_path),
            "--eval-dir",
            str(tmp_path / "e"),
            "--eval-bin",
            str(tmp_path),
        ]
    )
    assert code == 1
    assert "no tokenizer in" in capsys.readouterr().err


@pytest.mark.parametrize("limit", ["0", "-1", "x"])
def test_evaluate_cli_rejects_a_bad_limit(limit: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(
            [
                "evaluate",
                "--endpoint",
                "u",
                "--model-name",
                "m",
                "--tokenizer",
                "t",
                "--eval-dir",
                "e",
                "--limit",
                limit,
            ]
        )
    assert exit_.value.code == 2


def test_llm_benchmark_needs_a_tokenizer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = cli.main(
        [
            "benchmark",
            "--model-kind",
            "text-generation",
            "--endpoint",
            "http://127.0.0.1:8000",
            "--model-name",
            "m",
            "--benchmark-dir",
            str(tmp_path),
        ]
    )
    assert code == 1
    assert "needs --tokenizer" in capsys.readouterr().err


def test_missing_eval_tools_name_the_setup_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as err:
        EvalTools(tmp_path).executable("lm_eval")
    assert err.value.fix is not None and "make eval-env" in err.value.fix


def test_tools_never_inherit_the_endpoint_token_or_an_openai_key() -> None:
    inherited = {"ENDPOINT_TOKEN": "tok-1234", "OPENAI_API_KEY": "sk-someones-own", "PATH": "/bin"}
    assert tool_env(inherited, offline=False) == {"PATH": "/bin"}


def test_lm_eval_gets_the_endpoint_token_as_openai_api_key_never_on_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_tokenizer: Path
) -> None:
    from pydantic import SecretStr

    token = "endpoint-token-s3cr3t-5678"
    checked: list[Any] = []
    runs: list[tuple[list[Any], dict[str, str]]] = []

    def fake_run(argv: list[Any], *, env: dict[str, str], log_path: Path, **kwargs: Any) -> None:
        runs.append((argv, dict(env)))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"lm-eval echoing Authorization: Bearer {token}\n", encoding="utf-8")

    monkeypatch.setattr(evaluate, "lookup_tasks", lambda *a, **k: {"modelpipe_science_mc": "multiple_choice"})
    monkeypatch.setattr(evaluate, "check_served", lambda *a, **k: checked.append(k.get("token")))
    monkeypatch.setattr(evaluate, "run_tool", fake_run)
    monkeypatch.setattr(evaluate, "read_lm_eval_output", lambda out: _json("lm_eval_results.json"))
    (tmp_path / "lm_eval").write_text("#!/bin/sh\n", encoding="utf-8")
    (tmp_path / "lm_eval").chmod(0o755)
    evaluate.evaluate_model(
        endpoint="http://127.0.0.1:9",
        model_name="m",
        tokenizer_dir=tiny_tokenizer,
        tasks=["modelpipe_science_mc"],
        eval_dir=tmp_path / "eval",
        tools=EvalTools(tmp_path),
        environ={"PATH": "/bin"},
        endpoint_token=SecretStr(token),
    )
    assert [value.get_secret_value() for value in checked] == [token]
    ((argv, env),) = runs
    assert env["OPENAI_API_KEY"] == token
    assert token not in " ".join(str(part) for part in argv)
    for path in (tmp_path / "eval").rglob("*"):
        if path.is_file():
            assert "s3cr3t" not in path.read_text(encoding="utf-8"), path


def test_guidellm_reads_the_token_from_a_private_scenario_not_argv(tmp_path: Path) -> None:
    from pydantic import SecretStr

    scenario = benchmark_llm._auth_scenario(tmp_path, SecretStr("tok-1234"))
    assert scenario is not None and scenario.stat().st_mode & 0o777 == 0o600
    assert json.loads(scenario.read_text())["spec"]["backend"]["api_key"] == "tok-1234"
    assert benchmark_llm._auth_scenario(tmp_path / "none", None) is None
