"""Tiny random-weight models written locally, so tests and the local run never need the Hugging Face Hub.

Every folder is real ``save_pretrained`` output (diffusers pipelines of each family, transformers CLIP),
seeded so the same call writes byte-identical files. torch, diffusers and transformers load only when a
model is written, so the CLI can list ``DEMO_MODELS`` without them.
"""

from __future__ import annotations

import copy
import functools
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from modelpipe.demo_models.families import FAMILY_BUILDERS
from modelpipe.demo_models.llm import write_tiny_llm
from modelpipe.demo_models.tokenizers import clip_tokenizer as _clip_tokenizer

log = logging.getLogger(__name__)

SEED = 0
# Chosen so the random CLIP scores typical demo images above zero: CLIPScore clamps at 0, and a demo showing
# a real number exercises the whole scoring path.
CLIP_SEED = 36
# Families whose Hub repos ship the default weights and an fp16 variant side by side (like sd-turbo).
_BOTH_WEIGHT_SETS = frozenset({"tiny-turbo"})


def _text_config(vocab_size: int):  # -> CLIPTextConfig
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        layer_norm_eps=1e-5,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        projection_dim=32,
    )


def _prepare_out(out: Path) -> Path:
    """Refuse to overwrite a non-empty folder that is not ours; a fresh temp folder swaps in atomically."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))


def _finish(tmp: Path, out: Path) -> Path:
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


def write_tiny_sd(out: Path) -> Path:
    """Write a tiny Stable Diffusion pipeline (random weights) that generates 64x64 images.

    Args:
        out: A new or empty folder; filled atomically (a crash leaves no half-written model).

    Returns:
        ``out``, loadable with ``DiffusionPipeline.from_pretrained(out, local_files_only=True)``.

    Raises:
        FileExistsError: ``out`` exists and is not an empty folder.
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tmp = _prepare_out(out)
    try:
        tokenizer = _clip_tokenizer()
        torch.manual_seed(SEED)
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16),
            layers_per_block=1,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=4,
        )
        torch.manual_seed(SEED + 1)
        vae = AutoencoderKL(
            block_out_channels=(8, 16),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=4,
            sample_size=64,
        )
        torch.manual_seed(SEED + 2)
        text_encoder = CLIPTextModel(_text_config(len(tokenizer)))
        scheduler = DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
        )
        pipeline = StableDiffusionPipeline(
            unet=unet,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        # mypy resolves `from diffusers import` to diffusers' dummy placeholder classes (no methods).
        pipeline.save_pretrained(tmp, safe_serialization=True)  # type: ignore[attr-defined]
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote tiny Stable Diffusion pipeline to %s", out)
    return _finish(tmp, out)


def write_tiny_clip(out: Path) -> Path:
    """Write a tiny CLIP model and processor (random weights) usable for CLIP scores.

    Args:
        out: A new or empty folder; filled atomically.

    Returns:
        ``out``, loadable with ``modelpipe.clip.load_clip_score(out)``.

    Raises:
        FileExistsError: ``out`` exists and is not an empty folder.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPVisionConfig

    tmp = _prepare_out(out)
    try:
        tokenizer = _clip_tokenizer()
        vision = CLIPVisionConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            projection_dim=32,
        )
        config = CLIPConfig(
            text_config=_text_config(len(tokenizer)).to_dict(),
            vision_config=vision.to_dict(),
            projection_dim=32,
        )
        torch.manual_seed(CLIP_SEED)
        model = CLIPModel(config)
        image_processor = CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True
        )
        processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote tiny CLIP model to %s", out)
    return _finish(tmp, out)


def write_family(
    kind: str, out: Path, *, variant: str | None = None, max_shard_size: str | None = None
) -> Path:
    """Write the tiny pipeline of one family (``tiny-sdxl``, ``tiny-flux``, ...; see ``FAMILY_BUILDERS``).

    Args:
        kind: A key of ``FAMILY_BUILDERS``.
        out: A new or empty folder; filled atomically.
        variant: Write only ``*.VARIANT.*`` weights (``fp16`` stores them in half precision), the layout of
            Hub repos that ship no default weights. None writes the default weights (tiny-turbo also writes
            an fp16 variant next to them, like sd-turbo).
        max_shard_size: Split each weight file into shards of at most this size (e.g. ``"20KB"``) with an
            ``*.index.json``, the layout of large Hub repos.

    Returns:
        ``out``.

    Raises:
        FileExistsError: ``out`` exists and is not an empty folder.
        KeyError: ``kind`` is not a family.
    """
    import torch

    builder = FAMILY_BUILDERS[kind]
    tmp = _prepare_out(out)
    try:
        pipeline = builder()
        pipeline.set_progress_bar_config(disable=True)
        if variant is not None or kind in _BOTH_WEIGHT_SETS:
            name = variant or "fp16"
            half = copy.deepcopy(pipeline).to(torch.float16) if name == "fp16" else pipeline
            half.save_pretrained(tmp, safe_serialization=True, variant=name, max_shard_size=max_shard_size)
        # Default weights last: configs shared by both sets (transformers' "dtype") then describe them.
        if variant is None:
            pipeline.save_pretrained(tmp, safe_serialization=True, max_shard_size=max_shard_size)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s to %s", kind, out)
    return _finish(tmp, out)


# Every writer takes the output folder (families also take variant / max_shard_size) and returns it.
DEMO_MODELS: dict[str, Callable[..., Path]] = {
    "tiny-sd": write_tiny_sd,
    "tiny-clip": write_tiny_clip,
    "tiny-llm": write_tiny_llm,
    **{kind: functools.partial(write_family, kind) for kind in FAMILY_BUILDERS},
}
"""Demo model name -> writer ``(out, *, variant=None, max_shard_size=None) -> Path``."""
