"""Benchmark a live KServe V1 text-to-image endpoint: CLIP score over prompts, latency under concurrency."""

from __future__ import annotations

import io
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pydantic import SecretStr
from torchmetrics.multimodal.clip_score import CLIPScore

from modelpipe.benchmark_schema import (
    IMAGES_DIR,
    RESULTS_FILE,
    BenchmarkResults,
    BenchmarkSettings,
    ClipScoreResult,
    LatencyLevel,
    PromptScore,
    PromptSet,
)
from modelpipe.clip import load_clip_score
from modelpipe.clip_models import clip_model_dir
from modelpipe.config import S3Settings
from modelpipe.errors import BenchmarkError
from modelpipe.loadgen import (
    GeneratedImage,
    ImageRequest,
    RequestFailed,
    V1ImageClient,
    public_endpoint,
    run_level,
    summarize_level,
    summarize_sweep,
)
from modelpipe.prompts import Prompts, default_prompts, read_prompt_file
from modelpipe.serving_defaults import read_served_defaults

log = logging.getLogger(__name__)

# Files a CLIP model folder needs (config, weights, tokenizer, processor); .bin weights are skipped.
# Warm-up and sweep seeds sit far above the CLIP images' seeds (--seed + prompt index, default 0..N-1).
SWEEP_SEED_OFFSET = 1_000_000
WARMUP_SEED = SWEEP_SEED_OFFSET - 1_000


@dataclass(frozen=True)
class BenchmarkOutcome:
    """What ``benchmark_model`` wrote.

    Attributes:
        results: The validated contents of results.json.
        results_path: ``OUT/results.json``.
        images_dir: ``OUT/images`` (one PNG per scored prompt).
    """

    results: BenchmarkResults
    results_path: Path
    images_dir: Path


@dataclass(frozen=True)
class _Image:
    index: int
    file_name: str | None
    pixels: np.ndarray | None
    error: str | None


def benchmark_model(
    *,
    endpoint: str,
    model_name: str,
    clip_model: str,
    out_dir: Path,
    prompts_file: Path | None = None,
    concurrency: Sequence[int] = (1, 2, 4, 8),
    requests: int = 16,
    warmup: int = 2,
    steps: int | None = None,
    width: int | None = None,
    height: int | None = None,
    guidance_scale: float | None = None,
    seed: int = 0,
    timeout_seconds: float = 600.0,
    s3_settings: S3Settings | None = None,
    hf_token: SecretStr | None = None,
    clip_cache_dir: Path | None = None,
    endpoint_token: SecretStr | None = None,
) -> BenchmarkOutcome:
    """Score and time a served text-to-image model; write ``OUT/results.json`` and ``OUT/images/``.

    Prompt ``i`` is drawn with seed ``seed + i``. The latency sweep sends ``requests`` timed requests at each
    concurrency level after ``warmup`` untimed ones. Failed requests are counted, not fatal. results.json is
    written last and removed first, so an interrupted run never leaves a complete-looking folder.

    Args:
        endpoint: Base URL of the inference service (KServe V1 protocol).
        model_name: Served model name.
        clip_model: ``hf://ORG/REPO[@REV]``, ``s3://BUCKET/PREFIX`` or a local folder.
        out_dir: Output folder.
        prompts_file: Prompt file (one per line); None for the built-in default set.
        concurrency: Concurrency levels of the sweep.
        requests: Timed requests per level.
        warmup: Untimed requests before the sweep.
        steps: Inference steps per image; None: the served model's default (read from its V2 metadata).
        width: Image width; None (with height): the served model's default size.
        height: Image height.
        guidance_scale: Guidance scale; None: the served model's default.
        seed: Base seed of the CLIP images.
        timeout_seconds: Per-request timeout.
        s3_settings: Connection for an s3:// CLIP model (required for one).
        hf_token: Token for an hf:// CLIP model.
        clip_cache_dir: Where downloaded CLIP models are kept (default: HF cache for hf://, a temp dir for s3://).
        endpoint_token: Bearer token of an endpoint deployed with ``auth=true`` (sent with every request).

    Raises:
        BenchmarkError: Bad settings or prompt file, endpoint unreachable, refusing access (401/403) or not
            ready, or no image or timed request succeeded.
        ClipModelError: The CLIP model folder is not a CLIP model.
        StorageError: The s3:// CLIP model cannot be downloaded.
    """
    # The given settings are checked before the endpoint is asked for the rest (neutral stand-ins here).
    _check_settings(
        concurrency=concurrency,
        requests=requests,
        warmup=warmup,
        steps=1 if steps is None else steps,
        width=64 if width is None else width,
        height=64 if height is None else height,
        guidance_scale=0.0 if guidance_scale is None else guidance_scale,
        timeout_seconds=timeout_seconds,
    )
    if steps is None or width is None or height is None or guidance_scale is None:
        served = read_served_defaults(endpoint, model_name, token=endpoint_token)
        log.info("served model's defaults: %s", served.describe())
        steps = served.steps if steps is None else steps
        guidance_scale = served.guidance if guidance_scale is None else guidance_scale
        if width is None or height is None:
            width, height = served.width, served.height
    _check_settings(
        concurrency=concurrency,
        requests=requests,
        warmup=warmup,
        steps=steps,
        width=width,
        height=height,
        guidance_scale=guidance_scale,
        timeout_seconds=timeout_seconds,
    )
    prompt_set = read_prompt_file(prompts_file) if prompts_file else default_prompts()
    settings = BenchmarkSettings(
        steps=steps,
        width=width,
        height=height,
        guidance_scale=guidance_scale,
        seeds=[seed + i for i in range(len(prompt_set.prompts))],
        concurrency=list(concurrency),
        requests_per_level=requests,
        warmup=warmup,
        timeout_seconds=timeout_seconds,
    )
    public = public_endpoint(endpoint)
    staging = _start_output(out_dir)

    # The endpoint is asked first: a wrong URL or a missing token fails before a CLIP model is fetched.
    with V1ImageClient(
        endpoint,
        model_name,
        timeout_seconds=timeout_seconds,
        max_connections=max(concurrency),
        token=endpoint_token,
    ) as client:
        client.check_ready()
        with clip_model_dir(
            clip_model, s3_settings=s3_settings, hf_token=hf_token, cache_dir=clip_cache_dir
        ) as clip:
            clip_dir, clip_info = clip
            started = time.perf_counter()
            metric = load_clip_score(clip_dir)
            log.info("CLIP model %s loaded in %.1fs", clip_info.id, time.perf_counter() - started)
            log.info(
                "benchmark %s model %s: %d prompts (%s)",
                public,
                model_name,
                len(settings.seeds),
                prompt_set.name,
            )
            _warm_up(client, settings, prompt_set)
            images = _generate_images(client, settings, prompt_set, staging)
            levels = _sweep(client, settings, prompt_set)
            summary = summarize_sweep(levels)
            clip_result = _score(metric, prompt_set, settings.seeds, images)

    results = BenchmarkResults(
        created=datetime.now(UTC),
        endpoint=public,
        model_name=model_name,
        settings=settings,
        prompt_set=PromptSet(name=prompt_set.name, sha256=prompt_set.sha256, count=len(settings.seeds)),
        clip_model=clip_info,
        clip_score=clip_result,
        latency=levels,
        summary=summary,
        images=[image.file_name for image in images if image.file_name],
    )
    outcome = _finish_output(out_dir, staging, results)
    log.info(
        "clip score %.2f, p50 %.3fs, p95 %.3fs, %.3f images/s -> %s",
        clip_result.mean,
        summary.p50_seconds,
        summary.p95_seconds,
        summary.images_per_second,
        outcome.results_path,
    )
    return outcome


def _start_output(out_dir: Path) -> Path:
    """Remove a previous results.json first, so a half-finished run never looks complete; return staging."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULTS_FILE).unlink(missing_ok=True)
    staging = out_dir / f".{IMAGES_DIR}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def _finish_output(out_dir: Path, staging: Path, results: BenchmarkResults) -> BenchmarkOutcome:
    """Swap the staged images in, then write results.json last (atomically)."""
    images_dir = out_dir / IMAGES_DIR
    shutil.rmtree(images_dir, ignore_errors=True)
    staging.rename(images_dir)
    results_path = results.save(out_dir / RESULTS_FILE)
    return BenchmarkOutcome(results=results, results_path=results_path, images_dir=images_dir)


def _check_settings(
    *,
    concurrency: Sequence[int],
    requests: int,
    warmup: int,
    steps: int,
    width: int,
    height: int,
    guidance_scale: float,
    timeout_seconds: float,
) -> None:
    problems = []
    if not concurrency or any(level < 1 for level in concurrency):
        problems.append(f"concurrency levels must be >= 1 (got {list(concurrency)})")
    if len(set(concurrency)) != len(concurrency):
        problems.append(f"concurrency levels repeat (got {list(concurrency)})")
    if requests < 1:
        problems.append(f"requests must be >= 1 (got {requests})")
    if warmup < 0:
        problems.append(f"warmup must be >= 0 (got {warmup})")
    if steps < 1:
        problems.append(f"steps must be >= 1 (got {steps})")
    if width < 8 or height < 8 or width % 8 or height % 8:
        problems.append(f"size must be multiples of 8 pixels (got {width}x{height})")
    if not 0 <= guidance_scale < float("inf"):
        problems.append(f"guidance_scale must be >= 0 (got {guidance_scale})")
    if not 0 < timeout_seconds < float("inf"):
        problems.append(f"timeout must be > 0 seconds (got {timeout_seconds})")
    if problems:
        raise BenchmarkError("; ".join(problems))


def _request(settings: BenchmarkSettings, prompt: str, seed: int) -> ImageRequest:
    return ImageRequest(
        prompt=prompt,
        seed=seed,
        steps=settings.steps,
        width=settings.width,
        height=settings.height,
        guidance_scale=settings.guidance_scale,
    )


def _warm_up(client: V1ImageClient, settings: BenchmarkSettings, prompts: Prompts) -> None:
    if settings.warmup == 0:
        return
    started = time.perf_counter()
    run = run_level(
        lambda i: client.generate(
            _request(settings, prompts.prompts[i % len(prompts.prompts)], WARMUP_SEED + i)
        ),
        concurrency=1,
        requests=settings.warmup,
    )
    errors = [o.error for o in run.outcomes if o.error]
    if len(errors) == len(run.outcomes):
        raise BenchmarkError(
            f"all {len(errors)} warm-up requests to {public_endpoint(client.endpoint)} failed: {errors[0]}",
            fix="check the runtime's logs and that --steps/--size are within its limits",
        )
    log.info(
        "warm-up: %d requests in %.1fs, %d failed",
        len(run.outcomes),
        time.perf_counter() - started,
        len(errors),
    )


def _generate_images(
    client: V1ImageClient, settings: BenchmarkSettings, prompts: Prompts, images_dir: Path
) -> list[_Image]:
    """One image per prompt with its fixed seed, saved as PNG; failures recorded per prompt."""
    images: list[_Image | None] = [None] * len(prompts.prompts)

    def draw(index: int) -> None:
        seed = settings.seeds[index]
        generated = client.generate(_request(settings, prompts.prompts[index], seed))
        pixels = _decode(generated, settings, seed)
        name = f"{index:03d}.png"
        _save_png(generated, pixels, images_dir / name)
        images[index] = _Image(index=index, file_name=name, pixels=pixels, error=None)

    started = time.perf_counter()
    run = run_level(draw, concurrency=max(settings.concurrency), requests=len(images))
    for index, outcome in enumerate(run.outcomes):
        if outcome.error is not None:
            images[index] = _Image(index=index, file_name=None, pixels=None, error=outcome.error)
    done = [image for image in images if image is not None]
    failed = [image for image in done if image.error]
    log.info(
        "images: %d generated in %.1fs, %d failed",
        len(done) - len(failed),
        time.perf_counter() - started,
        len(failed),
    )
    if len(failed) == len(done):
        raise BenchmarkError(
            f"no image could be generated for any of the {len(done)} prompts: {failed[0].error}",
            fix="check the runtime's logs and that --steps/--size are within its limits",
        )
    return done


def _decode(generated: GeneratedImage, settings: BenchmarkSettings, seed: int) -> np.ndarray:
    """RGB uint8 pixels (H, W, 3) of a generated image, checked against what was asked."""
    if generated.seed is not None and generated.seed != seed:
        raise RequestFailed(f"endpoint answered seed {generated.seed} for requested seed {seed}")
    try:
        with Image.open(io.BytesIO(generated.data)) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise RequestFailed(f"undecodable {generated.format} image: {err}") from err
    if rgb.size != (settings.width, settings.height):
        raise RequestFailed(
            f"image is {rgb.width}x{rgb.height}, requested {settings.width}x{settings.height}"
        )
    return np.array(rgb, dtype=np.uint8)


def _save_png(generated: GeneratedImage, pixels: np.ndarray, path: Path) -> None:
    if generated.format == "png":
        path.write_bytes(generated.data)
    else:
        Image.fromarray(pixels).save(path, format="PNG")


def _sweep(client: V1ImageClient, settings: BenchmarkSettings, prompts: Prompts) -> list[LatencyLevel]:
    levels = []
    for concurrency in settings.concurrency:

        def send(i: int, offset: int = SWEEP_SEED_OFFSET + 10_000 * concurrency) -> None:
            client.generate(_request(settings, prompts.prompts[i % len(prompts.prompts)], offset + i))

        level = summarize_level(
            run_level(send, concurrency=concurrency, requests=settings.requests_per_level),
            steps=settings.steps,
        )
        log.info(
            "concurrency %d: p50 %s p95 %s, %.3f images/s, %d/%d errors",
            concurrency,
            _seconds(level.p50_seconds),
            _seconds(level.p95_seconds),
            level.images_per_second,
            level.errors,
            level.requests,
        )
        levels.append(level)
    return levels


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _score(metric: CLIPScore, prompts: Prompts, seeds: list[int], images: list[_Image]) -> ClipScoreResult:
    """Per-prompt scores from torchmetrics' batch value; the mean is the metric's accumulated compute()."""
    entries = []
    with torch.inference_mode():
        for image in images:
            score = None
            if image.pixels is not None:
                tensor = torch.from_numpy(image.pixels).permute(2, 0, 1).contiguous()
                score = float(metric(tensor.unsqueeze(0), [prompts.prompts[image.index]]))
            entries.append(
                PromptScore(
                    index=image.index,
                    prompt=prompts.prompts[image.index],
                    seed=seeds[image.index],
                    image=image.file_name,
                    clip_score=score,
                    error=image.error,
                )
            )
        mean = float(metric.compute())
    scored = sum(1 for entry in entries if entry.clip_score is not None)
    return ClipScoreResult(mean=mean, scored=scored, failed=len(entries) - scored, per_prompt=entries)
