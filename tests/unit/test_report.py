"""render_report: a self-contained folder with a real latency plot, image grid, escaped text, no secrets."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from modelpipe.benchmark_schema import BenchmarkResults
from modelpipe.errors import BenchmarkResultsError
from modelpipe.report import render_report
from PIL import Image

from tests.unit.steps.test_benchmark_schema import sample_results_dict


def _images(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        pixels = np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return folder


@pytest.fixture
def results() -> BenchmarkResults:
    return BenchmarkResults.model_validate(sample_results_dict(count=3))


@pytest.fixture
def images_dir(tmp_path: Path, results: BenchmarkResults) -> Path:
    return _images(tmp_path / "bench" / "images", results.images)


def test_report_has_a_real_latency_plot(results: BenchmarkResults, images_dir: Path, tmp_path: Path) -> None:
    index = render_report(results, images_dir, tmp_path / "report")
    assert 'src="latency.png"' in index.read_text()
    with Image.open(tmp_path / "report" / "latency.png") as plot:
        assert plot.format == "PNG"
        assert plot.width >= 800 and plot.height >= 300
        pixels = np.asarray(plot.convert("L"))
    # Axes, lines and bars drawn: far from a blank canvas.
    assert (pixels < 128).mean() > 0.01


def test_grid_shows_every_image_with_its_prompt(
    results: BenchmarkResults, images_dir: Path, tmp_path: Path
) -> None:
    page = render_report(results, images_dir, tmp_path / "report").read_text()
    assert page.count("<figure>") == 3
    for name in results.images:
        assert f'src="images/{name}"' in page
        assert (tmp_path / "report" / "images" / name).read_bytes() == (images_dir / name).read_bytes()
    assert "prompt number 2" in page
    assert "CLIP 21.50" in page


def test_prompts_and_errors_are_html_escaped(
    results: BenchmarkResults, images_dir: Path, tmp_path: Path
) -> None:
    page = render_report(results, images_dir, tmp_path / "report").read_text()
    assert "<b>&</b>" not in page
    assert "prompt number 0 &lt;b&gt;&amp;&lt;/b&gt;" in page
    assert (
        re.search(
            r"<(?!/?(html|head|meta|title|style|body|h1|h2|table|tr|th|td|p|a|img|div|figure|"
            r"figcaption|br|span)\b)",
            page.replace("<!DOCTYPE html>", ""),
        )
        is None
    )


def test_failed_prompt_shows_its_error_instead_of_an_image(tmp_path: Path) -> None:
    data = sample_results_dict(count=3)
    data["clip_score"]["per_prompt"][1].update(image=None, clip_score=None, error="HTTP 500: <boom>")
    data["clip_score"].update(scored=2, failed=1)
    data["images"] = ["000.png", "002.png"]
    results = BenchmarkResults.model_validate(data)
    page = render_report(results, _images(tmp_path / "img", results.images), tmp_path / "r").read_text()
    assert "no image: HTTP 500: &lt;boom&gt;" in page
    assert page.count('<img src="images/') == 2


def test_secrets_in_results_are_masked(
    results: BenchmarkResults,
    images_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-123")
    data = results.model_dump(mode="json")
    data["latency"][1]["error_samples"] = ["HTTP 403: signature for s3cr3t-value-123 rejected"]
    leaky = BenchmarkResults.model_validate(data)
    report = tmp_path / "report"
    render_report(leaky, images_dir, report)
    page = (report / "index.html").read_text()
    assert "s3cr3t-value-123" not in page
    assert "signature for *** rejected" in page


def test_report_is_self_contained(results: BenchmarkResults, images_dir: Path, tmp_path: Path) -> None:
    page = render_report(results, images_dir, tmp_path / "report").read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links, "expected links to the plot and images"
    for link in links:
        assert "://" not in link and not link.startswith("/")
        assert (tmp_path / "report" / link).is_file(), link


def test_missing_image_is_named(results: BenchmarkResults, images_dir: Path, tmp_path: Path) -> None:
    (images_dir / "001.png").unlink()
    with pytest.raises(BenchmarkResultsError, match=r"missing from .*: 001\.png"):
        render_report(results, images_dir, tmp_path / "report")
    assert not (tmp_path / "report" / "index.html").exists()


def test_report_into_the_benchmark_folder_keeps_the_images(
    results: BenchmarkResults, images_dir: Path
) -> None:
    index = render_report(results, images_dir, images_dir.parent)
    assert index.is_file()
    assert sorted(p.name for p in images_dir.iterdir()) == results.images
    assert BenchmarkResults.load(images_dir.parent) == results
