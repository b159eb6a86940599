"""HTML reports: a folder with index.html, PNG plots and copies of the results; no external links.

The page frame, plot saving and the upload of a report folder are shared by both model kinds; the
text-to-image report (CLIP score, latency, the images) is here, the language-model one in llm_report.py.
"""

from __future__ import annotations

import html
import logging
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

from modelpipe.benchmark_schema import IMAGES_DIR, RESULTS_FILE, BenchmarkResults
from modelpipe.errors import BenchmarkResultsError
from modelpipe.files import write_text_atomic
from modelpipe.manifest import sha256_file
from modelpipe.redaction import redact
from modelpipe.s3 import S3Client, S3Location, upload_bytes
from modelpipe.uploads import UploadItem, upload_files

log = logging.getLogger(__name__)

INDEX_FILE = "index.html"
LATENCY_PLOT = "latency.png"
_PERCENTILES = (
    ("p50", "p50_seconds"),
    ("p90", "p90_seconds"),
    ("p95", "p95_seconds"),
    ("p99", "p99_seconds"),
)
PAGE_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}.meta{color:#666}
""".strip()
_IMAGES_CSS = """
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:1rem}
figure{margin:0;border:1px solid #ddd;padding:.5rem;background:#fafafa}
figure img{width:100%;height:auto;image-rendering:pixelated}
figcaption{font-size:.85rem;overflow-wrap:anywhere}.error{color:#b00}
""".strip()
# Uploaded as text after redaction; everything else (PNGs) as bytes with its sha256.
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json"}


def escape(value: object) -> str:
    """``value`` as HTML text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def new_figure(width: float = 10, height: float = 4) -> Figure:
    """A matplotlib figure on its own Agg canvas (no pyplot state), 100 dpi, constrained layout."""
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_png(figure: Figure, path: Path) -> Path:
    """Write ``figure`` to ``path`` as PNG."""
    figure.savefig(path, format="png")
    return path


def html_page(title: str, body: str, *, css: str = PAGE_CSS) -> str:
    """A self-contained HTML page: ``title`` as <title> and <h1>, then ``body`` (already HTML)."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{css}</style>
</head>
<body>
<h1>{escape(title)}</h1>
{body}
</body>
</html>
"""


def write_index(out_dir: Path, page: str) -> Path:
    """Write ``out_dir/index.html`` atomically and redacted: written last, it marks a report whole."""
    index = out_dir / INDEX_FILE
    write_text_atomic(index, redact(page))
    return index


def upload_report(client: S3Client, where: S3Location, render: Callable[[Path], Path]) -> tuple[str, int]:
    """Render a report into a temporary folder and upload it under ``where``: PNGs, then JSON, page last.

    A reader who finds the page finds everything it links to; text documents pass through redaction,
    so no secret ends up in the bucket; unchanged PNGs are skipped by their sha256.

    Args:
        client: The S3 client of the report bucket.
        where: The report folder's location.
        render: Writes the report into the folder it is given and returns the page's path.

    Returns:
        The page's path relative to ``where`` and the number of objects.

    Raises:
        StorageError: An upload failed.
    """
    with tempfile.TemporaryDirectory(prefix="modelpipe-report-") as tmp:
        staging = Path(tmp)
        page = render(staging)
        files = sorted(path for path in staging.rglob("*") if path.is_file())
        binaries = [path for path in files if path.suffix.lower() not in _CONTENT_TYPES]
        texts = [path for path in files if path.suffix.lower() in _CONTENT_TYPES and path != page]
        upload_files(
            client,
            [_upload_item(path, where.child(path.relative_to(staging).as_posix())) for path in binaries],
        )
        for path in [*texts, page]:
            upload_bytes(
                client,
                redact(path.read_text(encoding="utf-8")).encode("utf-8"),
                where.child(path.relative_to(staging).as_posix()),
                content_type=_CONTENT_TYPES[path.suffix.lower()],
            )
        return page.relative_to(staging).as_posix(), len(files)


def _upload_item(path: Path, location: S3Location) -> UploadItem:
    return UploadItem(path=path, location=location, sha256=sha256_file(path), size=path.stat().st_size)


def render_report(results: BenchmarkResults, images_dir: Path, out_dir: Path) -> Path:
    """Write ``out_dir/index.html`` with ``latency.png``, ``results.json`` and a copy of the images.

    Every text from the results is HTML-escaped and passed through the redaction helper. index.html is
    written last (atomically), so a folder without it is incomplete.

    Args:
        results: A benchmark's validated results.
        images_dir: The benchmark's ``images/`` folder.
        out_dir: Report folder (created; existing report files are replaced).

    Returns:
        Path of index.html.

    Raises:
        BenchmarkResultsError: An image named in the results is missing from ``images_dir``.
    """
    missing = [name for name in results.images if not (images_dir / name).is_file()]
    if missing:
        raise BenchmarkResultsError(
            f"{len(missing)} image(s) named in results missing from {images_dir}: {', '.join(missing[:5])}",
            fix="pass the images/ folder written by the same `modelpipe benchmark` run",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    report_images = out_dir / IMAGES_DIR
    if report_images.resolve() != images_dir.resolve():
        report_images.mkdir(exist_ok=True)
        for name in results.images:
            shutil.copyfile(images_dir / name, report_images / name)
    plot_latency(results, out_dir / LATENCY_PLOT)
    results.save(out_dir / RESULTS_FILE)
    index = write_index(out_dir, _page(results))
    log.info("report written to %s (%d images)", index, len(results.images))
    return index


def plot_latency(results: BenchmarkResults, path: Path) -> Path:
    """Latency percentiles and throughput against concurrency, as a PNG (Agg canvas, no pyplot state)."""
    levels = sorted(results.latency, key=lambda level: level.concurrency)
    positions = list(range(len(levels)))
    labels = [str(level.concurrency) for level in levels]
    figure = new_figure()
    latency_ax, throughput_ax = figure.subplots(1, 2)
    for label, attribute in _PERCENTILES:
        values = [_nan(getattr(level, attribute)) for level in levels]
        latency_ax.plot(positions, values, marker="o", label=label)
    latency_ax.set(title="Latency per request", xlabel="concurrency", ylabel="seconds")
    latency_ax.set_ylim(bottom=0)
    latency_ax.legend()
    throughput_ax.bar(positions, [level.images_per_second for level in levels], color="tab:green")
    throughput_ax.set(title="Throughput", xlabel="concurrency", ylabel="images / second")
    for ax in (latency_ax, throughput_ax):
        ax.set_xticks(positions, labels)
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle(
        f"{results.model_name}: {results.settings.width}x{results.settings.height}, "
        f"{results.settings.steps} steps, "
        f"{results.summary.errors} of {results.summary.requests} timed requests failed"
    )
    return save_png(figure, path)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in pairs)


def _summary_table(r: BenchmarkResults) -> str:
    s, clip = r.settings, r.clip_score
    revision = f" @ {r.clip_model.revision}" if r.clip_model.revision else ""
    return _rows(
        [
            ("model", r.model_name),
            ("endpoint", r.endpoint),
            ("created", r.created.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("CLIP score", f"{clip.mean:.2f} ({clip.scored} images scored, {clip.failed} failed)"),
            ("CLIP model", f"{r.clip_model.id}{revision} ({r.clip_model.source})"),
            (
                "prompt set",
                f"{r.prompt_set.name}: {r.prompt_set.count} prompts, sha256 {r.prompt_set.sha256}",
            ),
            (
                "p50 / p95 latency",
                f"{r.summary.p50_seconds:.3f} s / {r.summary.p95_seconds:.3f} s "
                f"(concurrency {r.summary.latency_concurrency})",
            ),
            (
                "peak throughput",
                f"{r.summary.images_per_second:.3f} images/s "
                f"(concurrency {r.summary.throughput_concurrency})",
            ),
            ("errors", f"{r.summary.errors} of {r.summary.requests} timed requests"),
            (
                "settings",
                f"{s.width}x{s.height}, {s.steps} steps, guidance {s.guidance_scale}, "
                f"{s.requests_per_level} requests per level after {s.warmup} warm-up, "
                f"timeout {s.timeout_seconds:g} s",
            ),
        ]
    )


def _latency_table(r: BenchmarkResults) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "concurrency",
            "requests",
            "errors",
            "p50 s",
            "p90 s",
            "p95 s",
            "p99 s",
            "images/s",
            "s/step",
        )
    )
    rows = []
    for level in sorted(r.latency, key=lambda level: level.concurrency):
        cells = [
            str(level.concurrency),
            str(level.requests),
            str(level.errors),
            *(_seconds(getattr(level, attribute)) for _, attribute in _PERCENTILES),
            f"{level.images_per_second:.3f}",
            "-" if level.seconds_per_step is None else f"{level.seconds_per_step:.4f}",
        ]
        rows.append("<tr>" + "".join(f'<td class="num">{escape(c)}</td>' for c in cells) + "</tr>")
        for sample in level.error_samples:
            rows.append(
                f'<tr><td colspan="9" class="error">c={level.concurrency}: {escape(sample)}</td></tr>'
            )
    return f"<tr>{head}</tr>\n" + "\n".join(rows)


def _grid(r: BenchmarkResults) -> str:
    figures = []
    for entry in r.clip_score.per_prompt:
        if entry.image is not None and entry.clip_score is not None:
            src = escape(f"{IMAGES_DIR}/{entry.image}")
            body = f'<a href="{src}"><img src="{src}" alt="{escape(entry.prompt)}" loading="lazy"></a>'
            meta = f"seed {entry.seed} · CLIP {entry.clip_score:.2f}"
        else:
            body = f'<p class="error">no image: {escape(entry.error or "generation failed")}</p>'
            meta = f"seed {entry.seed}"
        figures.append(
            f"<figure>{body}<figcaption>{escape(entry.prompt)}<br>"
            f'<span class="meta">#{entry.index} · {escape(meta)}</span></figcaption></figure>'
        )
    return "\n".join(figures)


def _page(r: BenchmarkResults) -> str:
    body = f"""<table>
{_summary_table(r)}
</table>
<p><a href="{RESULTS_FILE}">{RESULTS_FILE}</a> (schema v{r.schema_version})</p>
<h2>Latency</h2>
<img src="{LATENCY_PLOT}" alt="latency percentiles and throughput against concurrency" width="1000">
<table>
{_latency_table(r)}
</table>
<h2>Images ({r.clip_score.scored} of {r.prompt_set.count})</h2>
<div class="grid">
{_grid(r)}
</div>"""
    return html_page(f"Benchmark: {r.model_name}", body, css=f"{PAGE_CSS}\n{_IMAGES_CSS}")
