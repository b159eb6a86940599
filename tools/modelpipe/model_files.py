"""Which files of a diffusers pipeline to fetch: model_index.json, component configs, one weight set each."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from modelpipe.errors import NotADiffusersModelError

log = logging.getLogger(__name__)

MODEL_INDEX = "model_index.json"
# Files a diffusers component folder needs besides weights: configs, tokenizer vocabularies, sentencepiece.
_CONFIG_SUFFIXES = frozenset({".json", ".txt", ".model", ".tiktoken"})
# Weight formats diffusers/transformers load with PyTorch, best first.
_LOADABLE_FORMATS = ("safetensors", "bin")
# Other weight formats (Flax, TF, ONNX, original checkpoints, GGUF): never fetched.
_OTHER_WEIGHT_SUFFIXES = frozenset(
    {".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".onnx_data", ".pb", ".ot", ".gguf", ".mlmodel"}
)
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
_WEIGHT_INDEX = re.compile(
    r"^(?P<stem>.+)\.(?P<format>safetensors|bin)\.index(?:\.(?P<variant>[^.]+))?\.json$"
)


def pipeline_components(model_index: Mapping[str, Any]) -> list[str]:
    """Component folder names a model_index.json declares (``name: [library, class]`` with both set).

    Raises:
        NotADiffusersModelError: No component is declared.
    """
    components = [
        name
        for name, value in model_index.items()
        if not name.startswith("_")
        and isinstance(value, list)
        and len(value) == 2
        and all(isinstance(part, str) and part for part in value)
    ]
    if not components:
        raise NotADiffusersModelError(f"{MODEL_INDEX} declares no pipeline components")
    return sorted(components)


def _weight_kind(name: str) -> tuple[str, str | None] | None:
    """(format, variant) of a loadable weight file or weight index, else None."""
    index = _WEIGHT_INDEX.match(name)
    if index:
        return index["format"], index["variant"]
    stem, dot, suffix = name.rpartition(".")
    if not dot or suffix not in _LOADABLE_FORMATS:
        return None
    stem = _SHARD.sub("", stem)
    _, dot, variant = stem.rpartition(".")
    return suffix, (variant if dot else None)


def _choose_weights(component: str, names: list[str], variant: str | None) -> list[str]:
    groups: dict[tuple[str, str | None], list[str]] = {}
    for name in names:
        kind = _weight_kind(name)
        if kind is not None:
            groups.setdefault(kind, []).append(name)
    order: list[tuple[str, str | None]] = [(fmt, variant) for fmt in _LOADABLE_FORMATS] if variant else []
    order += [(fmt, None) for fmt in _LOADABLE_FORMATS]
    for kind in order:
        if kind in groups:
            if variant and kind[1] is None:
                log.warning("component %s has no %s weights; using its default weights", component, variant)
            return sorted(groups[kind])
    others = sorted({v for (_, v) in groups if v})
    if others:
        raise NotADiffusersModelError(
            f"component {component!r} only has weights for variant(s) {', '.join(others)}",
            fix=f"pass --variant {others[0]}",
        )
    return []


def select_files(paths: Iterable[str], components: Iterable[str], *, variant: str | None = None) -> list[str]:
    """The files a diffusers pipeline needs, from a repository or folder listing.

    Keeps model_index.json and, in each component folder (one level deep), its configs and tokenizer files
    plus one weight set: safetensors before .bin, the requested variant (e.g. ``fp16``) before the default.
    Skips docs, images, top-level checkpoints, other formats (.ckpt, .pt, Flax, ONNX) and nested folders.

    Raises:
        NotADiffusersModelError: model_index.json is missing, a component has no folder, or a model
            component has no loadable weights.
    """
    listing = sorted(set(paths))
    if MODEL_INDEX not in listing:
        raise NotADiffusersModelError(
            f"no {MODEL_INDEX} at the top level: not a diffusers pipeline",
            fix="use a diffusers-format repository or folder (model_index.json, unet/, vae/, ...)",
        )
    selected = [MODEL_INDEX]
    for component in components:
        names = [p.split("/", 1)[1] for p in listing if p.startswith(f"{component}/") and p.count("/") == 1]
        if not names:
            raise NotADiffusersModelError(
                f"component {component!r} from {MODEL_INDEX} has no {component}/ folder"
            )
        configs = [n for n in names if PurePosixPath(n).suffix in _CONFIG_SUFFIXES and not _weight_kind(n)]
        weights = _choose_weights(component, names, variant)
        has_other = any(PurePosixPath(n).suffix in _OTHER_WEIGHT_SUFFIXES for n in names)
        if not weights and ("config.json" in names or has_other):
            raise NotADiffusersModelError(
                f"component {component!r} has no safetensors or .bin weights",
                fix="convert its weights to safetensors or pick another revision",
            )
        if not configs:
            raise NotADiffusersModelError(f"component {component!r} has no config files")
        selected += [f"{component}/{n}" for n in sorted(configs + weights)]
    return selected


def read_components(model_index: Path) -> list[str]:
    """Component names from a model_index.json file.

    Raises:
        NotADiffusersModelError: The file is not a JSON object or declares no components.
    """
    try:
        data = json.loads(model_index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NotADiffusersModelError(f"{model_index} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise NotADiffusersModelError(f"{model_index} is not a JSON object")
    return pipeline_components(data)
