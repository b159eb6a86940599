"""Check that the serving runtime can load a downloaded model, without loading any weights.

Runs between download and upload, so a model the runtime cannot load fails the import with the component
named before anything is uploaded or registered. Each component is checked the way ``from_pretrained``
will use it: its class resolves, its config parses, tokenizers, schedulers and processors load (they are
small), and the weight files of the chosen variant are present with readable safetensors headers.
"""

from __future__ import annotations

import importlib
import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelpipe.errors import ModelCheckError
from modelpipe.manifest import MANIFEST_NAME
from modelpipe.model_files import MODEL_INDEX, pipeline_components
from modelpipe.model_kinds import TEXT_GENERATION

log = logging.getLogger(__name__)

# Libraries a model_index.json may name; anything else would need code the runtime does not have.
_LIBRARIES = ("diffusers", "transformers")
# Weight file stems per library (diffusers models, transformers models).
_WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
# A tokenizer folder holds its vocabulary in one of these (fast JSON, sentencepiece, BPE vocab, tiktoken).
_VOCABULARY_FILES = ("tokenizer.json", "spiece.model", "tokenizer.model", "vocab.json", "vocab.txt")


@dataclass(frozen=True)
class CheckResult:
    """What was checked.

    Attributes:
        pipeline_class: The pipeline class named by model_index.json.
        components: ``name: ClassName`` of every component checked.
        variant: The weight variant checked (from manifest.json), or None.
    """

    pipeline_class: str
    components: tuple[str, ...]
    variant: str | None


def check_model(*, model_dir: Path, variant: str | None = None) -> CheckResult:
    """Check that ``model_dir`` is a text-to-image pipeline the runtime can load (no weights loaded).

    Args:
        model_dir: The downloaded model folder (model_index.json, component folders, manifest.json).
        variant: Weight variant to check; None takes the one manifest.json records.

    Returns:
        The pipeline class and the components checked.

    Raises:
        ModelCheckError: The pipeline or a component cannot be loaded; the message names it and why.
    """
    manifest_path = model_dir / MANIFEST_NAME
    manifest = _read_json(manifest_path, MANIFEST_NAME) if manifest_path.is_file() else {}
    if manifest.get("model_kind") == TEXT_GENERATION:
        return _check_language_model(model_dir)
    index = _read_json(model_dir / MODEL_INDEX, "model_index.json")
    if variant is None:
        variant = manifest.get("variant")
    pipeline_class = str(index.get("_class_name", ""))
    _check_pipeline_class(pipeline_class)
    checked = []
    for name in pipeline_components(index):
        library, class_name = index[name]
        cls = _resolve(name, library, class_name)
        _check_component(model_dir / name, name, cls, variant)
        checked.append(f"{name}: {class_name}")
        log.info("component %s (%s.%s) loads", name, library, class_name)
    return CheckResult(pipeline_class=pipeline_class, components=tuple(checked), variant=variant)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelCheckError(what, f"{path} does not exist", fix="run `modelpipe download` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelCheckError(what, f"{path} is unreadable: {err}") from None
    if not isinstance(data, dict):
        raise ModelCheckError(what, f"{path} is not a JSON object")
    return data


def _check_pipeline_class(name: str) -> None:
    from diffusers.pipelines.auto_pipeline import AUTO_TEXT2IMAGE_PIPELINES_MAPPING

    text_to_image = {cls.__name__ for cls in AUTO_TEXT2IMAGE_PIPELINES_MAPPING.values()}
    if name not in text_to_image:
        raise ModelCheckError(
            "pipeline",
            f"{name or 'no _class_name'} is not a text-to-image pipeline diffusers' "
            "AutoPipelineForText2Image loads (the runtime serves those)",
            fix="import a text-to-image model (SD, SDXL, SD3, FLUX, PixArt, Sana, ...)",
        )


def _resolve(name: str, library: str, class_name: str) -> type:
    if library not in _LIBRARIES:
        raise ModelCheckError(
            name, f"library {library!r} is not one the runtime has ({', '.join(_LIBRARIES)})"
        )
    module = importlib.import_module(library)
    try:
        cls = getattr(module, class_name)
    except (AttributeError, ImportError) as err:
        raise ModelCheckError(
            name,
            f"{library} has no class {class_name!r} ({err})",
            fix="use a runtime image with a newer diffusers/transformers, or another model",
        ) from None
    if not isinstance(cls, type):
        raise ModelCheckError(name, f"{library}.{class_name} is not a class")
    return cls


def _check_component(folder: Path, name: str, cls: type, variant: str | None) -> None:
    if not folder.is_dir():
        raise ModelCheckError(name, f"{folder.name}/ folder is missing")
    kind = _kind(cls)
    if kind == "tokenizer" and not any((folder / vocab).is_file() for vocab in _VOCABULARY_FILES):
        # transformers 5 builds an empty placeholder vocabulary instead of failing.
        raise ModelCheckError(
            name,
            f"{cls.__name__} has no vocabulary file (one of {', '.join(_VOCABULARY_FILES)})",
            fix="download the repository's tokenizer files too",
        )
    try:
        if kind == "model":
            _load_config(folder, cls)
        else:
            cls.from_pretrained(str(folder))  # type: ignore[attr-defined]
    except ModelCheckError:
        raise
    # from_pretrained of tokenizers/schedulers/configs raises many types (OSError, ValueError, ImportError
    # for a missing sentencepiece, KeyError, TypeError) with readable messages; each names this component.
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelCheckError(name, f"{cls.__name__} cannot load: {reason}") from err
    if kind == "model":
        _check_weights(folder, name, variant)


def _kind(cls: type) -> str:
    from diffusers import ModelMixin
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    if issubclass(cls, (ModelMixin, PreTrainedModel)):
        return "model"
    return "tokenizer" if issubclass(cls, PreTrainedTokenizerBase) else "other"


def _load_config(folder: Path, cls: type) -> None:
    from diffusers import ModelMixin

    if issubclass(cls, ModelMixin):
        cls.load_config(str(folder))  # type: ignore[attr-defined]
    else:
        config_class = cls.config_class  # type: ignore[attr-defined]
        config_class.from_pretrained(str(folder))


def _check_weights(folder: Path, name: str, variant: str | None) -> None:
    """One weight set for the variant (single file or index with all shards), headers readable."""
    suffix = f".{variant}" if variant else ""
    for stem in _WEIGHT_STEMS:
        for fmt in ("safetensors", "bin"):
            single = folder / f"{stem}{suffix}.{fmt}"
            indexes = [
                folder / f"{stem}{suffix}.{fmt}.index.json",
                folder / f"{stem}.{fmt}.index{suffix}.json",
            ]
            if single.is_file():
                _check_weight_file(single, name)
                return
            for index in indexes:
                if index.is_file():
                    _check_shards(index, name)
                    return
    which = f"{variant} " if variant else "default "
    present = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    raise ModelCheckError(
        name,
        f"no {which}weights (looked for *{suffix}.safetensors/.bin or an index; found: "
        f"{', '.join(present) or 'none'})",
        fix="re-run download with the variant the folder has (--variant fp16) or without one",
    )


def _check_shards(index: Path, name: str) -> None:
    data = _read_json(index, f"{name}/{index.name}")
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelCheckError(name, f"{index.name} has no weight_map")
    for shard in sorted(set(weight_map.values())):
        path = index.parent / str(shard)
        if not path.is_file():
            raise ModelCheckError(name, f"shard {shard} listed in {index.name} is missing")
        _check_weight_file(path, name)


def _check_weight_file(path: Path, name: str) -> None:
    """A safetensors file starts with an 8-byte header length and a JSON header; read only those."""
    if path.suffix != ".safetensors":
        return
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if not 0 < length <= _MAX_SAFETENSORS_HEADER:
                raise ValueError(f"header length {length} is implausible")
            header = json.loads(handle.read(length))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (OSError, struct.error, ValueError) as err:
        raise ModelCheckError(name, f"{path.name} is not a readable safetensors file: {err}") from None


def _check_language_model(model_dir: Path) -> CheckResult:
    """A causal LM for vLLM: its config and tokenizer load, and its safetensors weights are readable."""
    from transformers import AutoConfig, AutoTokenizer

    checked = []
    for component, load in (("config", AutoConfig), ("tokenizer", AutoTokenizer)):
        try:
            loaded = load.from_pretrained(str(model_dir))
        # Same as for pipeline components: many exception types, each with a readable message.
        except Exception as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelCheckError(component, f"cannot load: {reason}") from err
        checked.append(f"{component}: {type(loaded).__name__}")
    _check_weights(model_dir, "weights", None)
    architectures = getattr(AutoConfig.from_pretrained(str(model_dir)), "architectures", None) or ["?"]
    return CheckResult(pipeline_class=str(architectures[0]), components=tuple(checked), variant=None)
