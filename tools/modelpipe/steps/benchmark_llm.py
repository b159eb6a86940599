"""Load-test a live OpenAI-compatible endpoint with guidellm: one synchronous run plus a concurrency sweep."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from modelpipe.endpoint_auth import token_value
from modelpipe.errors import ConfigError, EvaluationError
from modelpipe.eval_tools import GUIDELLM, EvalTools, redact_outputs, run_tool, tool_env
from modelpipe.llm_results import (
    RESULTS_FILE,
    LLMBenchmarkResults,
    LoadLevel,
    LoadSettings,
    LoadSummary,
    Percentiles,
    utc_now,
)
from modelpipe.steps.evaluate import api_base, check_served
from modelpipe.tokenizer_files import has_tokenizer

log = logging.getLogger(__name__)

REQUEST_FORMAT = "/v1/completions"
GUIDELLM_DIR = "guidellm"


@dataclass(frozen=True)
class LLMBenchmarkOutcome:
    """What ``benchmark_llm`` wrote."""

    results: LLMBenchmarkResults
    results_path: Path


def benchmark_llm(
    *,
    endpoint: str,
    model_name: str,
    tokenizer_dir: Path,
    benchmark_dir: Path,
    tools: EvalTools,
    environ: Mapping[str, str],
    concurrency: Sequence[int] = (2, 4),
    requests: int = 20,
    prompt_tokens: int = 64,
    output_tokens: int = 32,
    timeout_seconds: float = 3600.0,
    endpoint_token: SecretStr | None = None,
) -> LLMBenchmarkOutcome:
    """Run guidellm synchronously, then at each concurrency level, and write ``benchmark_dir/results.json``.

    Prompts are synthetic (``prompt_tokens`` in, ``output_tokens`` out, counted with the model's tokenizer),
    so no dataset is fetched; guidellm runs with the Hub switched off.

    Args:
        endpoint: Server base URL (``http://host:port``).
        model_name: Served model name.
        tokenizer_dir: Folder with the model's tokenizer.
        benchmark_dir: Output folder: results.json and guidellm/ (raw reports and logs).
        tools: Where guidellm is.
        environ: Environment guidellm inherits (storage and registry secrets are withheld).
        concurrency: Levels of the sweep after the synchronous run (1 is the synchronous run itself).
        requests: Requests per level.
        prompt_tokens: Prompt length in tokens.
        output_tokens: Generated tokens per request.
        timeout_seconds: Kill a guidellm run after this long.
        endpoint_token: Bearer token of an endpoint deployed with ``auth=true``; guidellm reads it from a
            scenario file readable only by this user (its only way besides argv), removed after the run.

    Returns:
        The parsed results and where they were written.

    Raises:
        ConfigError: Bad arguments or no tokenizer.
        EvaluationError: The endpoint does not serve the model, guidellm failed, or every request errored.
    """
    _check_arguments(concurrency, requests, prompt_tokens, output_tokens, tokenizer_dir)
    check_served(api_base(endpoint), model_name, token=endpoint_token)
    raw_dir = benchmark_dir / GUIDELLM_DIR
    shutil.rmtree(raw_dir, ignore_errors=True)
    raw_dir.mkdir(parents=True)
    env = tool_env(environ, offline=True)
    sweep = sorted({level for level in concurrency if level > 1})
    runs: list[tuple[str, list[int]]] = [("synchronous", [])] + ([("concurrent", sweep)] if sweep else [])
    levels: list[LoadLevel] = []
    version = "unknown"
    with tempfile.TemporaryDirectory(prefix="modelpipe-guidellm-") as private:
        scenario = _auth_scenario(Path(private), endpoint_token)
        try:
            for profile, streams in runs:
                report = raw_dir / f"{profile}.json"
                argv = _guidellm_argv(
                    tools,
                    endpoint=endpoint.rstrip("/").removesuffix("/v1"),
                    model_name=model_name,
                    tokenizer_dir=tokenizer_dir,
                    profile=profile,
                    streams=streams,
                    requests=requests,
                    prompt_tokens=prompt_tokens,
                    output_tokens=output_tokens,
                    report=report,
                    scenario=scenario,
                )
                log.info(
                    "guidellm %s%s: %d requests per level",
                    profile,
                    f" {streams}" if streams else "",
                    requests,
                )
                run_tool(
                    argv,
                    env=env,
                    log_path=raw_dir / f"{profile}.log",
                    timeout_seconds=timeout_seconds,
                    cwd=raw_dir,
                    what=f"guidellm {profile}",
                )
                raw = read_report(report)
                version = guidellm_version(raw) or version
                levels.extend(parse_levels(raw))
        finally:
            if endpoint_token is not None:
                redact_outputs(raw_dir)
    settings = LoadSettings(
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        requests_per_level=requests,
        concurrency=[1, *sweep],
        request_format=REQUEST_FORMAT,
    )
    results = LLMBenchmarkResults(
        created=utc_now(),
        endpoint=endpoint,
        model_name=model_name,
        guidellm_version=version,
        settings=settings,
        levels=levels,
        summary=summarize(levels),
    )
    if results.summary.requests == 0:
        raise EvaluationError(
            f"every guidellm request to {endpoint} failed ({results.summary.errors} errors); "
            f"logs in {raw_dir}",
            fix="check that the endpoint serves /v1/completions for this model",
        )
    path = results.save(benchmark_dir / RESULTS_FILE)
    return LLMBenchmarkOutcome(results=results, results_path=path)


def _check_arguments(
    concurrency: Sequence[int], requests: int, prompt_tokens: int, output_tokens: int, tokenizer_dir: Path
) -> None:
    if any(level < 1 for level in concurrency):
        raise ConfigError(f"concurrency levels must be >= 1, got {list(concurrency)}")
    for flag, value in (("--requests", requests), ("--prompt-tokens", prompt_tokens)):
        if value < 1:
            raise ConfigError(f"{flag} {value} must be >= 1")
    if output_tokens < 1:
        raise ConfigError(f"--output-tokens {output_tokens} must be >= 1")
    if not has_tokenizer(tokenizer_dir):
        raise ConfigError(
            f"no tokenizer in {tokenizer_dir} (tokenizer.json or tokenizer_config.json)",
            fix="pass the model folder, or the model's s3:// URI, as --tokenizer",
        )


def _auth_scenario(folder: Path, token: SecretStr | None) -> Path | None:
    """A guidellm scenario holding only the backend's api_key (sent as ``Authorization: Bearer``), mode 0600.

    guidellm merges ``--backend`` from the command line over it, so the token never reaches argv.
    """
    if token is None:
        return None
    path = folder / "auth.json"
    path.touch(mode=0o600)
    scenario = {"spec": {"backend": {"kind": "openai_http", "api_key": token_value(token)}}}
    path.write_text(json.dumps(scenario), encoding="utf-8")
    return path


def _guidellm_argv(
    tools: EvalTools,
    *,
    endpoint: str,
    model_name: str,
    tokenizer_dir: Path,
    profile: str,
    streams: Sequence[int],
    requests: int,
    prompt_tokens: int,
    output_tokens: int,
    report: Path,
    scenario: Path | None = None,
) -> list[str | Path]:
    argv: list[str | Path] = [
        tools.executable(GUIDELLM),
        "run",
        "--backend",
        f"kind=openai_http,target={endpoint},model={model_name},request_format={REQUEST_FORMAT}",
        "--tokenizer",
        f"kind=hf_auto,model={tokenizer_dir.resolve()}",
        "--data",
        f"kind=synthetic_text,prompt_tokens={prompt_tokens},output_tokens={output_tokens}",
        "--profile",
        f"kind={profile}",
        "--constraint",
        f"kind=max_requests,count={requests}",
        "--output",
        f"kind=json,path={report}",
        "--disable-progress",
    ]
    if scenario is not None:
        argv[2:2] = ["--config", scenario]
    if streams:
        argv += ["--override", "profile.streams", ",".join(str(level) for level in streams)]
    return argv


def read_report(path: Path) -> dict[str, Any]:
    """guidellm's JSON report.

    Raises:
        EvaluationError: Missing, not JSON, or without benchmarks.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise EvaluationError(f"guidellm wrote no readable report at {path}: {err}") from err
    if not isinstance(data, dict) or not data.get("benchmarks"):
        raise EvaluationError(f"{path} holds no benchmarks")
    return data


def guidellm_version(raw: Mapping[str, Any]) -> str | None:
    """The guidellm version recorded in a report, if any."""
    metadata = raw.get("metadata") or {}
    version = metadata.get("guidellm_version") if isinstance(metadata, dict) else None
    return str(version) if version else None


def parse_levels(raw: Mapping[str, Any]) -> list[LoadLevel]:
    """One :class:`LoadLevel` per benchmark in a guidellm report.

    Raises:
        EvaluationError: A benchmark lacks the metrics we publish.
    """
    levels = []
    for benchmark in raw["benchmarks"]:
        try:
            levels.append(_level(benchmark))
        except (KeyError, TypeError, ValueError) as err:
            raise EvaluationError(f"unexpected guidellm report layout: {err!r}") from err
    return levels


def _level(benchmark: Mapping[str, Any]) -> LoadLevel:
    strategy = benchmark["config"]["strategy"]
    kind = str(strategy.get("type_") or strategy.get("type"))
    streams = int(strategy.get("streams") or 1)
    metrics = benchmark["metrics"]
    totals = metrics["request_totals"]
    return LoadLevel(
        profile="synchronous" if kind == "synchronous" else "concurrent",
        concurrency=1 if kind == "synchronous" else streams,
        requests=int(totals["successful"]),
        errors=int(totals["errored"]) + int(totals["incomplete"]),
        ttft_ms=_percentiles(metrics["time_to_first_token_ms"]),
        itl_ms=_percentiles(metrics["inter_token_latency_ms"]),
        tpot_ms=_percentiles(metrics["time_per_output_token_ms"]),
        request_latency_seconds=_percentiles(metrics["request_latency"]),
        requests_per_second=_mean(metrics["requests_per_second"]),
        output_tokens_per_second=_mean(metrics["output_tokens_per_second"]),
    )


def _percentiles(summary: Mapping[str, Any]) -> Percentiles:
    successful = summary["successful"]
    if not successful or not successful.get("count"):
        return Percentiles(mean=0.0, p50=0.0, p90=0.0, p95=0.0, p99=0.0)
    points = successful["percentiles"]
    return Percentiles(
        mean=float(successful["mean"]),
        p50=float(points["p50"]),
        p90=float(points["p90"]),
        p95=float(points["p95"]),
        p99=float(points["p99"]),
    )


def _mean(summary: Mapping[str, Any]) -> float:
    successful = summary["successful"]
    return float(successful["mean"]) if successful and successful.get("count") else 0.0


def summarize(levels: Sequence[LoadLevel]) -> LoadSummary:
    """Single-stream latency from the synchronous level, peak rates over all levels, totals."""
    single = min(levels, key=lambda level: (level.requests == 0, level.concurrency))
    return LoadSummary(
        ttft_p50_ms=single.ttft_ms.p50,
        ttft_p95_ms=single.ttft_ms.p95,
        itl_p50_ms=single.itl_ms.p50,
        tpot_p50_ms=single.tpot_ms.p50,
        request_latency_p50_seconds=single.request_latency_seconds.p50,
        request_latency_p95_seconds=single.request_latency_seconds.p95,
        request_latency_p99_seconds=single.request_latency_seconds.p99,
        requests_per_second=max(level.requests_per_second for level in levels),
        output_tokens_per_second=max(level.output_tokens_per_second for level in levels),
        requests=sum(level.requests for level in levels),
        errors=sum(level.errors for level in levels),
    )
