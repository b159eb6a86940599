"""Score a live OpenAI-compatible endpoint with lm-eval and write per-task metrics to results.json."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from pydantic import SecretStr

from modelpipe.endpoint_auth import AUTH_STATUSES, auth_failure, auth_headers, token_value
from modelpipe.errors import ConfigError, EvaluationError, UnknownTaskError
from modelpipe.eval_tools import LM_EVAL, OPENAI_API_KEY, EvalTools, redact_outputs, run_tool, tool_env
from modelpipe.llm_results import RESULTS_FILE, EvaluationResults, MetricValue, TaskScore, utc_now
from modelpipe.manifest import sha256_file
from modelpipe.tokenizer_files import has_tokenizer

log = logging.getLogger(__name__)

# The seed pipeline's tasks (their data comes from the Hub: only where the cluster reaches it).
DEFAULT_TASKS: tuple[str, ...] = ("hellaswag", "arc_easy")
# Shipped with the bundle (JSONL + task YAML): disconnected clusters, CI and the local run.
BUNDLED_TASKS_DIR = Path(__file__).resolve().parent.parent / "lm_eval_tasks"
OFFLINE_TASKS: tuple[str, ...] = ("modelpipe_science_mc", "modelpipe_sentence_mc", "modelpipe_arith_gen")
PROBE_SCRIPT = Path(__file__).resolve().parent.parent / "lm_eval_probe.py"
# Output types scored from log-likelihoods: they need /v1/completions with echo and logprobs.
_LOGLIKELIHOOD_TYPES = frozenset({"multiple_choice", "loglikelihood", "loglikelihood_rolling", "mixed"})
_PROBE_TIMEOUT_SECONDS = 300.0
_ROUTES = {"completions": "completions", "chat-completions": "chat/completions"}
SEED = 1234


@dataclass(frozen=True)
class EvaluateOutcome:
    """What ``evaluate_model`` wrote."""

    results: EvaluationResults
    results_path: Path


def evaluate_model(
    *,
    endpoint: str,
    model_name: str,
    tokenizer_dir: Path,
    tasks: Sequence[str],
    eval_dir: Path,
    tools: EvalTools,
    environ: Mapping[str, str],
    limit: int | None = None,
    num_fewshot: int | None = None,
    num_concurrent: int = 1,
    max_length: int = 2048,
    generation_api: str = "chat-completions",
    include_paths: Sequence[Path] = (),
    timeout_seconds: float = 3600.0,
    request_timeout_seconds: int = 300,
    endpoint_token: SecretStr | None = None,
) -> EvaluateOutcome:
    """Run lm-eval against the endpoint and write ``eval_dir/results.json``.

    Every task is looked up in lm-eval's registry first: an unknown name fails before any request. Tasks
    scored by log-likelihood go through ``local-completions``; generation tasks through
    ``local-chat-completions`` (``generation_api="chat-completions"``, with the served chat template) or
    ``local-completions``. Tokens are counted with the tokenizer in ``tokenizer_dir``. When every task's data
    ships with the bundle, lm-eval runs with the Hub switched off.

    Args:
        endpoint: Base URL of the server (``http://host:port``; ``/v1`` is added).
        model_name: Served model name.
        tokenizer_dir: Folder with the model's tokenizer files.
        tasks: lm-eval task, group or tag names.
        eval_dir: Output folder: results.json, lm-eval/ (raw output, samples, logs).
        tools: Where lm_eval and its python are.
        environ: Environment the tools inherit (storage and registry secrets are withheld).
        limit: Documents per task (None: all).
        num_fewshot: Few-shot examples (None: each task's default).
        num_concurrent: Parallel requests lm-eval sends.
        max_length: Context length lm-eval truncates prompts to.
        generation_api: ``chat-completions`` or ``completions`` for generate_until tasks.
        include_paths: Folders of extra task YAML, besides the bundled ones.
        timeout_seconds: Kill lm-eval after this long.
        request_timeout_seconds: Per-request timeout inside lm-eval.
        endpoint_token: Bearer token of an endpoint deployed with ``auth=true``; lm-eval gets it as
            OPENAI_API_KEY, which its API models send as ``Authorization: Bearer``.

    Returns:
        The parsed results and where they were written.

    Raises:
        ConfigError: Bad arguments or no tokenizer in tokenizer_dir.
        UnknownTaskError: lm-eval does not know a task.
        EvaluationError: The endpoint does not serve the model, or lm-eval failed.
    """
    _check_arguments(tasks, limit, num_concurrent, generation_api, tokenizer_dir)
    includes = [BUNDLED_TASKS_DIR, *(path.resolve() for path in include_paths)]
    offline = all(_bundled_data(task) is not None for task in tasks)
    env = tool_env(environ, offline=offline)
    eval_dir.mkdir(parents=True, exist_ok=True)
    output_types = lookup_tasks(tools, tasks, includes, env=env, work_dir=eval_dir)
    base_url = api_base(endpoint)
    check_served(base_url, model_name, token=endpoint_token)
    if endpoint_token is not None:
        env[OPENAI_API_KEY] = token_value(endpoint_token)
    raw_dir = eval_dir / "lm-eval"
    shutil.rmtree(raw_dir, ignore_errors=True)
    scores: list[TaskScore] = []
    version = ""
    try:
        for api, names in _by_api(output_types, generation_api).items():
            out_dir = raw_dir / api
            argv = _lm_eval_argv(
                tools,
                api=api,
                base_url=base_url,
                model_name=model_name,
                tokenizer_dir=tokenizer_dir,
                tasks=names,
                includes=includes,
                out_dir=out_dir,
                limit=limit,
                num_fewshot=num_fewshot,
                num_concurrent=num_concurrent,
                max_length=max_length,
                request_timeout_seconds=request_timeout_seconds,
            )
            log.info(
                "lm-eval (%s): %s, limit %s", api, ",".join(names), limit if limit is not None else "none"
            )
            # Bundled tasks name their JSONL relative to their folder, which is where lm-eval runs.
            run_tool(
                argv,
                env=env,
                log_path=raw_dir / f"{api}.log",
                timeout_seconds=timeout_seconds,
                cwd=BUNDLED_TASKS_DIR,
                what=f"lm-eval on {','.join(names)}",
            )
            raw = read_lm_eval_output(out_dir)
            version = str(raw.get("lm_eval_version") or version)
            scores.extend(parse_task_scores(raw, names, api=api))
    finally:
        if endpoint_token is not None:
            redact_outputs(raw_dir)
    results = EvaluationResults(
        created=utc_now(),
        endpoint=endpoint,
        model_name=model_name,
        lm_eval_version=version or "unknown",
        limit=limit,
        num_fewshot=num_fewshot,
        tokenizer=str(tokenizer_dir),
        tasks=scores,
    )
    path = results.save(eval_dir / RESULTS_FILE)
    return EvaluateOutcome(results=results, results_path=path)


def _check_arguments(
    tasks: Sequence[str], limit: int | None, num_concurrent: int, generation_api: str, tokenizer_dir: Path
) -> None:
    if not tasks or any(not task.strip() for task in tasks):
        raise ConfigError("no lm-eval task given", fix=f"pass --tasks, e.g. {','.join(OFFLINE_TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"--tasks names a task twice: {','.join(tasks)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit} must be >= 1")
    if num_concurrent < 1:
        raise ConfigError(f"--num-concurrent {num_concurrent} must be >= 1")
    if generation_api not in {"chat-completions", "completions"}:
        raise ConfigError(f"--generation-api {generation_api!r} must be chat-completions or completions")
    if not has_tokenizer(tokenizer_dir):
        raise ConfigError(
            f"no tokenizer in {tokenizer_dir} (tokenizer.json or tokenizer_config.json)",
            fix="pass the model folder, or the model's s3:// URI",
        )


def _bundled_data(task: str) -> Path | None:
    data = BUNDLED_TASKS_DIR / f"{task}.jsonl"
    return data if task in OFFLINE_TASKS and data.is_file() else None


def lookup_tasks(
    tools: EvalTools,
    tasks: Sequence[str],
    includes: Sequence[Path],
    *,
    env: Mapping[str, str],
    work_dir: Path,
) -> dict[str, str]:
    """Each task's output type from lm-eval's task registry; nothing is sent to the endpoint.

    Bundled tasks are read from their YAML here, which spares lm-eval's registry scan (seconds of CPU)
    when they are all that is asked for.

    Raises:
        UnknownTaskError: A task is not in the registry (message lists them and the bundled tasks).
        EvaluationError: The registry lookup itself failed.
    """
    known = {task: kind for task in tasks if (kind := bundled_output_type(task)) is not None}
    others = [task for task in tasks if task not in known]
    if not others:
        return known
    found_file = work_dir / "task-lookup.json"
    found_file.unlink(missing_ok=True)
    argv: list[str | Path] = [tools.python, PROBE_SCRIPT, "--tasks", ",".join(others), "--out", found_file]
    for include in includes:
        argv += ["--include_path", include]
    run_tool(
        argv,
        env=env,
        log_path=work_dir / "task-lookup.log",
        timeout_seconds=_PROBE_TIMEOUT_SECONDS,
        what="lm-eval task lookup",
    )
    try:
        found = json.loads(found_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise EvaluationError(f"the lm-eval task lookup wrote no result to {found_file}") from err
    unknown = [str(name) for name in found["unknown"]]
    if unknown:
        raise UnknownTaskError(
            f"unknown lm-eval task(s): {', '.join(unknown)}",
            fix=f"check the spelling (`lm_eval ls tasks`); bundled offline tasks: {', '.join(OFFLINE_TASKS)}",
        )
    known.update({str(name): str(kind) for name, kind in found["output_types"].items()})
    return {task: known[task] for task in tasks}


def bundled_output_type(task: str) -> str | None:
    """The output_type of a task shipped in lm_eval_tasks/, or None for any other task."""
    if task not in OFFLINE_TASKS:
        return None
    config = yaml.safe_load((BUNDLED_TASKS_DIR / f"{task}.yaml").read_text(encoding="utf-8"))
    return str(config["output_type"])


def api_base(endpoint: str) -> str:
    """``http://host:port/v1`` from a base URL with or without ``/v1``.

    Raises:
        ConfigError: Not an http(s) URL.
    """
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"--endpoint {endpoint!r} must be an http:// or https:// URL")
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


def check_served(
    base_url: str, model_name: str, timeout_seconds: float = 30.0, *, token: SecretStr | None = None
) -> None:
    """Fail fast, with the names the server knows, when ``model_name`` is not served at ``base_url``.

    ``token`` is the bearer token of an endpoint deployed with ``auth=true``.

    Raises:
        EvaluationError: The server is unreachable, refuses access (401/403) or does not list the model.
    """
    try:
        response = requests.get(f"{base_url}/models", timeout=timeout_seconds, headers=auth_headers(token))
        if response.status_code in AUTH_STATUSES:
            message, fix = auth_failure(response.status_code, base_url, token_sent=token is not None)
            raise EvaluationError(message, fix=fix)
        response.raise_for_status()
        served = [str(item.get("id")) for item in response.json().get("data", [])]
    except (requests.RequestException, ValueError, AttributeError) as err:
        raise EvaluationError(
            f"cannot list the models of {base_url}: {err}",
            fix="check --endpoint and that the server is ready",
        ) from err
    if model_name not in served:
        raise EvaluationError(
            f"{base_url} does not serve {model_name!r} (it serves: {', '.join(served) or 'nothing'})",
            fix="pass the served model name (SERVED_MODEL_NAME from deploy) as --model-name",
        )


def _by_api(output_types: Mapping[str, str], generation_api: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, kind in output_types.items():
        api = "completions" if kind in _LOGLIKELIHOOD_TYPES else generation_api
        groups.setdefault(api, []).append(name)
    return groups


def _lm_eval_argv(
    tools: EvalTools,
    *,
    api: str,
    base_url: str,
    model_name: str,
    tokenizer_dir: Path,
    tasks: Sequence[str],
    includes: Sequence[Path],
    out_dir: Path,
    limit: int | None,
    num_fewshot: int | None,
    num_concurrent: int,
    max_length: int,
    request_timeout_seconds: int,
) -> list[str | Path]:
    model_args = {
        "model": model_name,
        "base_url": f"{base_url}/{_ROUTES[api]}",
        "tokenizer_backend": "huggingface",
        "tokenizer": str(tokenizer_dir.resolve()),
        "max_length": str(max_length),
        "num_concurrent": str(num_concurrent),
        "timeout": str(request_timeout_seconds),
        "max_retries": "3",
    }
    if any("," in value or "=" in value for value in model_args.values()):
        raise ConfigError(f"lm-eval model arguments cannot contain ',' or '=': {model_args}")
    argv: list[str | Path] = [
        tools.executable(LM_EVAL),
        "run",
        "--model",
        "local-completions" if api == "completions" else "local-chat-completions",
        "--model_args",
        ",".join(f"{key}={value}" for key, value in model_args.items()),
        "--tasks",
        ",".join(tasks),
        "--include_path",
        ":".join(str(path) for path in includes),
        "--output_path",
        out_dir / "results.json",
        "--log_samples",
        "--seed",
        str(SEED),
    ]
    if api == "chat-completions":
        argv.append("--apply_chat_template")
    if limit is not None:
        argv += ["--limit", str(limit)]
    if num_fewshot is not None:
        argv += ["--num_fewshot", str(num_fewshot)]
    return argv


def read_lm_eval_output(out_dir: Path) -> dict[str, Any]:
    """lm-eval's aggregated results (``results_<time>.json`` under ``out_dir``), the newest one.

    Raises:
        EvaluationError: No results file, or not JSON.
    """
    found = sorted(out_dir.glob("results*.json"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise EvaluationError(f"lm-eval wrote no results file under {out_dir}")
    try:
        data = json.loads(found[-1].read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise EvaluationError(f"{found[-1]} is not JSON: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise EvaluationError(f"{found[-1]} has no 'results' object")
    return data


def parse_task_scores(raw: Mapping[str, Any], tasks: Sequence[str], *, api: str) -> list[TaskScore]:
    """One :class:`TaskScore` per task lm-eval reported (groups expand to their member tasks).

    Raises:
        EvaluationError: A requested task is missing from lm-eval's output.
    """
    results: Mapping[str, Any] = raw["results"]
    configs: Mapping[str, Any] = raw.get("configs") or {}
    samples: Mapping[str, Any] = raw.get("n-samples") or {}
    hashes: Mapping[str, Any] = raw.get("task_hashes") or {}
    fewshot: Mapping[str, Any] = raw.get("n-shot") or {}
    missing = [task for task in tasks if task not in results]
    if missing:
        raise EvaluationError(f"lm-eval reported no results for {', '.join(missing)}")
    scores = []
    for name in sorted(configs) or sorted(results):
        if name not in results:
            continue
        config = configs.get(name) or {}
        data = _bundled_data(name)
        shot = fewshot.get(name)
        scores.append(
            TaskScore(
                name=name,
                output_type=str(config.get("output_type") or "unknown"),
                api="completions" if api == "completions" else "chat-completions",
                samples=int((samples.get(name) or {}).get("effective", 0)),
                num_fewshot=int(shot) if isinstance(shot, int) else None,
                prompt_sha256=str(hashes[name]) if hashes.get(name) else None,
                data_sha256=sha256_file(data) if data else None,
                metrics=_metrics(results[name]),
            )
        )
    return scores


def _metrics(values: Mapping[str, Any]) -> list[MetricValue]:
    """``{"acc,none": 0.25, "acc_stderr,none": 0.1, "alias": ...}`` as metric values with stderr."""
    metrics = []
    for key, value in values.items():
        name, sep, filter_name = key.partition(",")
        if (
            not sep
            or name.endswith("_stderr")
            or not isinstance(value, int | float)
            or isinstance(value, bool)
        ):
            continue
        stderr = values.get(f"{name}_stderr,{filter_name}")
        metrics.append(
            MetricValue(
                name=name,
                filter=filter_name,
                value=float(value),
                stderr=float(stderr) if isinstance(stderr, int | float) else None,
            )
        )
    return sorted(metrics, key=lambda m: (m.name, m.filter))
