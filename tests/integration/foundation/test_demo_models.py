"""Demo models: byte-identical on rewrite, load offline, generate 64x64 images, give CLIP scores."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from modelpipe.clip import ClipModelError, load_clip_score

from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("kind", ["tiny-sd", "tiny-clip"])
def test_demo_model_command_writes_byte_identical_files(kind: str, tmp_path: Path) -> None:
    for out in ("first", "second"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelpipe",
                "demo-model",
                kind,
                str(tmp_path / out),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
    first, second = _digests(tmp_path / "first"), _digests(tmp_path / "second")
    assert first and first == second


def test_demo_model_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "modelpipe", "demo-model", "tiny-sd", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "is not empty" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_tiny_sd_loads_offline_and_generates_64px_images(
    tiny_sd_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import DiffusionPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipeline = DiffusionPipeline.from_pretrained(tiny_sd_dir, local_files_only=True)
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(
        ["a red cat", "a blue dog"],
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    ).images
    assert [image.size for image in images] == [(64, 64), (64, 64)]
    assert np.asarray(images[0]).std() > 0, "a blank image means the pipeline did not run"


def test_tiny_clip_score_matches_cosine_similarity(tiny_clip_dir: Path) -> None:
    metric = load_clip_score(tiny_clip_dir)
    images = torch.randint(
        0,
        256,
        (3, 3, 64, 64),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(2),
    )
    prompts = ["a red cat", "a photo of a city at night", "a tree on a mountain"]
    metric.update(list(images), prompts)
    score = float(metric.compute())

    processed = metric.processor(text=prompts, images=list(images), return_tensors="pt", padding=True)
    with torch.no_grad():
        image_features = metric.model.get_image_features(processed["pixel_values"])
        text_features = metric.model.get_text_features(processed["input_ids"], processed["attention_mask"])
    cosine = torch.nn.functional.cosine_similarity(image_features, text_features)
    expected = max(float((100 * cosine).mean()), 0.0)
    assert score == pytest.approx(expected, rel=1e-4)


def test_clip_loader_names_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ClipModelError, match="does not exist"):
        load_clip_score(tmp_path / "nope")


def test_clip_loader_refuses_a_non_clip_model(tiny_sd_dir: Path) -> None:
    with pytest.raises(ClipModelError, match="not a CLIP model"):
        load_clip_score(tiny_sd_dir / "text_encoder")
