"""CLIP scores with torchmetrics from a local CLIP folder (works around torchmetrics 1.9 + transformers 5)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from torchmetrics.multimodal.clip_score import CLIPScore
from transformers import CLIPModel, CLIPProcessor
from transformers.utils import logging as hf_logging

from modelpipe.errors import ModelpipeError

log = logging.getLogger(__name__)


class ClipModelError(ModelpipeError, ValueError):
    """A CLIP model folder is missing or is not a CLIP model."""


class _FeatureTensorCLIPModel(CLIPModel):
    """CLIPModel whose feature getters return tensors, as torchmetrics expects.

    transformers 5 returns output objects from ``get_image_features``/``get_text_features``; torchmetrics 1.9
    calls ``.norm`` on them and fails. The projected features are the output's ``pooler_output``.
    """

    def get_image_features(self, *args, **kwargs):  # type: ignore[override]
        return _as_tensor(super().get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs):  # type: ignore[override]
        return _as_tensor(super().get_text_features(*args, **kwargs))


def _as_tensor(features):  # type: ignore[no-untyped-def]
    return features if hasattr(features, "norm") else features.pooler_output


def check_clip_folder(model_dir: Path) -> None:
    """Refuse a folder that cannot hold a CLIP model, naming what is wrong.

    Raises:
        ClipModelError: the folder or its config.json is missing, or the config is not a CLIP config.
    """
    if not model_dir.is_dir():
        raise ClipModelError(
            f"CLIP model folder {model_dir} does not exist", fix="pass a folder written by save_pretrained"
        )
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ClipModelError(
            f"{model_dir} has no config.json", fix="pass a CLIP model folder (config.json + weights)"
        )
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError) as err:
        raise ClipModelError(f"{config_path} is not readable JSON: {err}") from err
    if model_type != "clip":
        raise ClipModelError(
            f"{model_dir} holds a {model_type!r} model, not a CLIP model",
            fix="pass a CLIP model such as openai/clip-vit-base-patch16",
        )


def load_clip_score(model_dir: Path) -> CLIPScore:
    """A torchmetrics ``CLIPScore`` backed by the CLIP model and processor in ``model_dir``.

    Feed it uint8 image tensors (C, H, W) in 0-255 and their prompts; ``compute()`` gives
    max(mean(100 * cosine), 0).

    Raises:
        ClipModelError: the folder is missing or not a CLIP model.
    """
    check_clip_folder(model_dir)
    # transformers draws a "Loading weights" bar on stderr; in pod logs it is noise.
    hf_logging.disable_progress_bar()
    model = _FeatureTensorCLIPModel.from_pretrained(model_dir, local_files_only=True)
    processor = CLIPProcessor.from_pretrained(model_dir, local_files_only=True)
    model.eval()
    log.debug("loaded CLIP model from %s", model_dir)
    return CLIPScore(model_name_or_path=lambda: (model, processor))
