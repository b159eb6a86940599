"""HTML report of a language model's tests: lm-eval scores and guidellm figures, with PNG plots."""

from __future__ import annotations

import logging
from pathlib import Path

from modelpipe.llm_results import EvaluationResults, LLMBenchmarkResults, LoadLevel
from modelpipe.report import INDEX_FILE as INDEX_FILE  # the page's name, for the publish step
from modelpipe.report import escape, html_page, new_figure, save_png, write_index

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
BENCHMARK_FILE = "results.json"
SCORES_PLOT = "scores.png"
LATENCY_PLOT = "latency.png"
THROUGHPUT_PLOT = "throughput.png"


def render_llm_report(
    evaluation: EvaluationResults | None, benchmark: LLMBenchmarkResults | None, out_dir: Path
) -> Path:
    """Write ``out_dir/index.html`` with the plots and copies of both results files; index.html last.

    Raises:
        ValueError: Neither results object given.
    """
    if evaluation is None and benchmark is None:
        raise ValueError("nothing to report: no evaluation and no benchmark results")
    out_dir.mkdir(parents=True, exist_ok=True)
    if evaluation is not None:
        evaluation.save(out_dir / EVALUATION_FILE)
        plot_scores(evaluation, out_dir / SCORES_PLOT)
    if benchmark is not None:
        benchmark.save(out_dir / BENCHMARK_FILE)
        plot_latency(benchmark, out_dir / LATENCY_PLOT)
        plot_throughput(benchmark, out_dir / THROUGHPUT_PLOT)
    index = write_index(out_dir, _page(evaluation, benchmark))
    log.info("report written to %s", index)
    return index


def plot_scores(results: EvaluationResults, path: Path) -> Path:
    """Headline metric per task with its standard error as a bar chart."""
    rows = [(task.name, task.headline()) for task in results.tasks]
    shown = [(name, metric) for name, metric in rows if metric is not None]
    figure = new_figure(max(5, 1.6 * len(shown) + 2))
    ax = figure.subplots()
    positions = list(range(len(shown)))
    ax.bar(
        positions,
        [metric.value for _, metric in shown],
        yerr=[metric.stderr or 0.0 for _, metric in shown],
        capsize=4,
        color="tab:blue",
    )
    ax.set_xticks(positions, [f"{name}\n({metric.name})" for name, metric in shown], fontsize=8)
    ax.set(title=f"lm-eval: {results.model_name}", ylabel="score", ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    return save_png(figure, path)


def _sorted(levels: list[LoadLevel]) -> list[LoadLevel]:
    return sorted(levels, key=lambda level: level.concurrency)


def plot_latency(results: LLMBenchmarkResults, path: Path) -> Path:
    """TTFT and inter-token latency percentiles against concurrency."""
    levels = _sorted(results.levels)
    x = [level.concurrency for level in levels]
    figure = new_figure()
    ttft_ax, itl_ax = figure.subplots(1, 2)
    for label in ("p50", "p95", "p99"):
        ttft_ax.plot(x, [getattr(level.ttft_ms, label) for level in levels], marker="o", label=label)
        itl_ax.plot(x, [getattr(level.itl_ms, label) for level in levels], marker="o", label=label)
    ttft_ax.set(title="Time to first token", xlabel="concurrent requests", ylabel="ms")
    itl_ax.set(title="Inter-token latency", xlabel="concurrent requests", ylabel="ms")
    for ax in (ttft_ax, itl_ax):
        ax.set_xticks(x)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(
        f"{results.model_name}: {results.settings.prompt_tokens} prompt / "
        f"{results.settings.output_tokens} output tokens"
    )
    return save_png(figure, path)


def plot_throughput(results: LLMBenchmarkResults, path: Path) -> Path:
    """Output tokens per second and requests per second against concurrency."""
    levels = _sorted(results.levels)
    x = [level.concurrency for level in levels]
    figure = new_figure()
    tokens_ax, requests_ax = figure.subplots(1, 2)
    tokens_ax.plot(x, [level.output_tokens_per_second for level in levels], marker="o", color="tab:green")
    requests_ax.plot(x, [level.requests_per_second for level in levels], marker="o", color="tab:purple")
    tokens_ax.set(title="Output throughput", xlabel="concurrent requests", ylabel="tokens / s")
    requests_ax.set(title="Request throughput", xlabel="concurrent requests", ylabel="requests / s")
    for ax in (tokens_ax, requests_ax):
        ax.set_xticks(x)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    return save_png(figure, path)


def _table(head: list[str], rows: list[list[str]]) -> str:
    header = "".join(f"<th>{escape(cell)}</th>" for cell in head)
    body = "\n".join(
        "<tr>" + "".join(f'<td class="num">{escape(c)}</td>' for c in row) + "</tr>" for row in rows
    )
    return f"<table>\n<tr>{header}</tr>\n{body}\n</table>"


def _evaluation_section(results: EvaluationResults) -> str:
    rows = []
    for task in results.tasks:
        for metric in task.metrics:
            stderr = "-" if metric.stderr is None else f"{metric.stderr:.4f}"
            rows.append(
                [
                    task.name,
                    metric.name,
                    metric.filter,
                    f"{metric.value:.4f}",
                    stderr,
                    str(task.samples),
                    task.api,
                ]
            )
    hashes = [[t.name, t.output_type, t.prompt_sha256 or "-", t.data_sha256 or "-"] for t in results.tasks]
    limit = "all documents" if results.limit is None else f"limit {results.limit} per task"
    created = results.created.isoformat()
    return f"""<h2>lm-eval scores</h2>
<p class="meta">lm-eval {escape(results.lm_eval_version)}, {escape(limit)}, created {escape(created)}</p>
<img src="{SCORES_PLOT}" alt="headline score per task with standard error">
{_table(["task", "metric", "filter", "value", "stderr", "samples", "API"], rows)}
<h3>Provenance</h3>
{_table(["task", "output type", "prompt hash (lm-eval)", "data sha256"], hashes)}
<p><a href="{EVALUATION_FILE}">{EVALUATION_FILE}</a></p>"""


def _benchmark_section(results: LLMBenchmarkResults) -> str:
    rows = []
    for level in _sorted(results.levels):
        rows.append(
            [
                f"{level.profile} ({level.concurrency})",
                str(level.requests),
                str(level.errors),
                f"{level.ttft_ms.p50:.2f}",
                f"{level.ttft_ms.p95:.2f}",
                f"{level.itl_ms.p50:.2f}",
                f"{level.tpot_ms.p50:.2f}",
                f"{level.request_latency_seconds.p50:.3f}",
                f"{level.request_latency_seconds.p95:.3f}",
                f"{level.request_latency_seconds.p99:.3f}",
                f"{level.requests_per_second:.2f}",
                f"{level.output_tokens_per_second:.1f}",
            ]
        )
    head = [
        "profile (concurrency)",
        "requests",
        "errors",
        "TTFT p50 ms",
        "TTFT p95 ms",
        "ITL p50 ms",
        "TPOT p50 ms",
        "latency p50 s",
        "latency p95 s",
        "latency p99 s",
        "requests/s",
        "output tokens/s",
    ]
    s = results.settings
    return f"""<h2>guidellm load test</h2>
<p class="meta">guidellm {escape(results.guidellm_version)}, synthetic prompts of {s.prompt_tokens} tokens,
{s.output_tokens} output tokens, {s.requests_per_level} requests per level, {escape(s.request_format)}</p>
<img src="{LATENCY_PLOT}" alt="TTFT and inter-token latency against concurrency" width="1000">
<img src="{THROUGHPUT_PLOT}" alt="throughput against concurrency" width="1000">
{_table(head, rows)}
<p><a href="{BENCHMARK_FILE}">{BENCHMARK_FILE}</a></p>"""


def _page(evaluation: EvaluationResults | None, benchmark: LLMBenchmarkResults | None) -> str:
    source = evaluation if evaluation is not None else benchmark
    name = source.model_name if source is not None else "model"
    endpoint = source.endpoint if source is not None else "-"
    sections = []
    if evaluation is not None:
        sections.append(_evaluation_section(evaluation))
    if benchmark is not None:
        sections.append(_benchmark_section(benchmark))
    body = "\n".join([f'<p class="meta">endpoint {escape(endpoint)}</p>', *sections])
    return html_page(f"Tests: {name}", body)
