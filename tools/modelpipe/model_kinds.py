"""Model kinds (text-to-image, text-generation): telling them apart and which files a language model needs."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

from modelpipe.errors import ModelKindError

log = logging.getLogger(__name__)

ModelKind = Literal["text-to-image", "text-generation"]
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)
TEXT_TO_IMAGE: ModelKind = "text-to-image"
TEXT_GENERATION: ModelKind = "text-generation"
DEFAULT_MODEL_KIND: ModelKind = TEXT_TO_IMAGE

DIFFUSERS_INDEX = "model_index.json"
CONFIG = "config.json"
GENERATION_CONFIG = "generation_config.json"
SAFETENSORS_WEIGHTS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
# What transformers' AutoTokenizer and chat templating read from a model folder (all optional each).
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "tokenizer.model",
        "spiece.model",
        "vocab.json",
        "merges.txt",
        "vocab.txt",
        "chat_template.jinja",
        "chat_template.json",
    }
)
_TOKENIZER_REQUIRED = frozenset({"tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json"})
# transformers also reads extra named chat templates from this folder.
_CHAT_TEMPLATES_DIR = "additional_chat_templates"
_TIKTOKEN = re.compile(r"^[^/]+\.tiktoken$")
_OTHER_WEIGHTS = re.compile(
    r"^(pytorch_model.*\.bin|tf_model\.h5|flax_model\.msgpack|.*\.gguf|.*\.pt|.*\.pth)$"
)


@dataclass(frozen=True)
class LanguageModelInfo:
    """What ``config.json`` tells about a causal language model, recorded in the Model Registry.

    Attributes:
        architecture: First entry of ``architectures``, e.g. ``LlamaForCausalLM``.
        model_type: ``model_type``, e.g. ``llama``.
        context_length: Maximum sequence length the model was built for (``max_position_embeddings``
            or its equivalent), or None when the config does not say.
        parameter_count: Number of parameters, from the safetensors headers.
        dtype: The weights' dtype as the config states it (``torch_dtype`` or ``dtype``), or None.
    """

    architecture: str
    model_type: str | None
    context_length: int | None
    parameter_count: int
    dtype: str | None


def parse_model_kind(value: str | None) -> ModelKind:
    """``--model-kind`` to a kind; an empty value means the default (text-to-image).

    Raises:
        ModelKindError: The value is not a known kind.
    """
    if not value:
        return DEFAULT_MODEL_KIND
    for kind in MODEL_KINDS:
        if value == kind:
            return kind
    raise ModelKindError(
        f"--model-kind {value!r} is not a model kind", fix=f"use one of {', '.join(MODEL_KINDS)}"
    )


def _generates_text(config: Mapping[str, Any]) -> bool:
    architectures = config.get("architectures") or []
    return any(
        isinstance(name, str) and name.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"))
        for name in architectures
    )


def refuse_other_kind(
    where: str, wanted: ModelKind, listing: Iterable[str], config: Mapping[str, Any] | None = None
) -> None:
    """Raise when ``listing`` is clearly a model of the other kind than ``wanted``.

    Args:
        where: The source, for the message.
        wanted: The ``--model-kind`` asked for.
        listing: Every path in the repository or folder.
        config: The parsed top-level config.json when at hand; names the architecture in the message.

    Raises:
        ModelKindError: Naming what the source is and the ``--model-kind`` that fits it.
    """
    names = set(listing)
    if wanted == TEXT_GENERATION and DIFFUSERS_INDEX in names:
        raise ModelKindError(
            f"{where} is a diffusers pipeline ({DIFFUSERS_INDEX}), not a text-generation model",
            fix="pass --model-kind text-to-image for this model, or a language model source",
        )
    if wanted == TEXT_TO_IMAGE and DIFFUSERS_INDEX not in names and CONFIG in names:
        architectures = [a for a in (config or {}).get("architectures") or [] if isinstance(a, str)]
        what = f" ({', '.join(architectures)})" if architectures else ""
        if config is None or _generates_text(config):
            raise ModelKindError(
                f"{where} is a transformers model{what} with {CONFIG} and no {DIFFUSERS_INDEX}, "
                "not a text-to-image diffusers pipeline",
                fix="pass --model-kind text-generation for a language model, or a diffusers source",
            )


def read_config(path: Path) -> dict[str, Any]:
    """``config.json`` as a dict.

    Raises:
        ModelKindError: The file is not a JSON object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelKindError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ModelKindError(f"{path} is not a JSON object")
    return data


def check_language_model_config(where: str, config: Mapping[str, Any]) -> str:
    """The architecture of a text-generation model's config.

    Raises:
        ModelKindError: The config declares no architecture that generates text.
    """
    architectures = [name for name in config.get("architectures") or [] if isinstance(name, str)]
    if not _generates_text(config):
        declared = ", ".join(architectures) or "none"
        raise ModelKindError(
            f"{where}: {CONFIG} declares architectures {declared}, none of which generates text",
            fix="use a causal language model (architectures ending in ForCausalLM), "
            "or --model-kind text-to-image for a diffusers pipeline",
        )
    return architectures[0]


def select_language_model_files(listing: Iterable[str], weight_index: Mapping[str, Any] | None) -> list[str]:
    """The files vLLM and transformers need to serve a causal language model, from a listing.

    Keeps config.json, generation_config.json, the tokenizer files and chat templates, and the safetensors
    weights: ``model.safetensors``, or the shards ``model.safetensors.index.json`` maps (with the index).
    Leaves out everything else: READMEs, images, .bin/.h5/.msgpack/.gguf weights, other formats' folders.

    Args:
        listing: Every path in the repository or folder.
        weight_index: The parsed ``model.safetensors.index.json`` when the listing has one.

    Raises:
        ModelKindError: No config.json, no tokenizer, no safetensors weights, or an index naming shards
            that are not there.
    """
    names = sorted(set(listing))
    present = set(names)
    if CONFIG not in present:
        raise ModelKindError(f"no {CONFIG} at the top level: not a transformers model")
    if not present & _TOKENIZER_REQUIRED:
        raise ModelKindError(
            "no tokenizer files (tokenizer.json, tokenizer.model, vocab.json or tokenizer_config.json)",
            fix="use a repository that ships its tokenizer",
        )
    selected = [CONFIG]
    selected += [name for name in names if name == GENERATION_CONFIG or name in TOKENIZER_FILES]
    selected += [name for name in names if _TIKTOKEN.match(name)]
    selected += [
        name
        for name in names
        if name.startswith(f"{_CHAT_TEMPLATES_DIR}/") and PurePosixPath(name).suffix == ".jinja"
    ]
    selected += _safetensors_weights(present, weight_index)
    return sorted(set(selected))


def _safetensors_weights(present: set[str], weight_index: Mapping[str, Any] | None) -> list[str]:
    if weight_index is not None:
        weight_map = weight_index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelKindError(f"{SAFETENSORS_INDEX} has no weight_map")
        shards = sorted({str(shard) for shard in weight_map.values()})
        missing = [shard for shard in shards if shard not in present]
        if missing:
            raise ModelKindError(
                f"{SAFETENSORS_INDEX} maps weights to shards that are not there: {', '.join(missing)}"
            )
        return [SAFETENSORS_INDEX, *shards]
    if SAFETENSORS_WEIGHTS in present:
        return [SAFETENSORS_WEIGHTS]
    others = sorted(name for name in present if _OTHER_WEIGHTS.match(name))
    raise ModelKindError(
        "no safetensors weights (model.safetensors or model.safetensors.index.json)"
        + (f"; only {', '.join(others[:3])}" if others else ""),
        fix="use a revision with safetensors weights (vLLM and this pipeline load safetensors only)",
    )


_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def language_model_info(model_dir: Path, weight_files: Iterable[str]) -> LanguageModelInfo:
    """Architecture, context length, dtype and parameter count of a downloaded language model.

    Args:
        model_dir: The model folder (with config.json).
        weight_files: Its ``.safetensors`` files (relative paths); their headers give the parameter count
            without loading any tensor.

    Raises:
        ModelKindError: config.json is missing or declares no text-generating architecture, or a weight
            file is not safetensors.
    """
    from safetensors import SafetensorError, safe_open

    config_path = model_dir / CONFIG
    if not config_path.is_file():
        raise ModelKindError(f"{config_path} does not exist: not a transformers model")
    config = read_config(config_path)
    architecture = check_language_model_config(str(model_dir), config)
    # Multimodal and some newer models keep the language model's settings in text_config.
    nested = config.get("text_config")
    text_config: dict[str, Any] = nested if isinstance(nested, dict) else {}
    context_length = next(
        (
            int(source[key])
            for source in (config, text_config)
            for key in _CONTEXT_KEYS
            if isinstance(source.get(key), int)
        ),
        None,
    )
    parameters = 0
    for rel in sorted(weight_files):
        if not rel.endswith(".safetensors"):
            continue
        try:
            with safe_open(str(model_dir / rel), framework="numpy") as handle:
                for name in handle.keys():  # noqa: SIM118 - safe_open is not a Mapping
                    shape = handle.get_slice(name).get_shape()
                    count = 1
                    for dim in shape:
                        count *= dim
                    parameters += count
        except (SafetensorError, OSError) as err:
            raise ModelKindError(f"{model_dir / rel} is not a readable safetensors file: {err}") from err
    dtype = config.get("torch_dtype") or config.get("dtype")
    return LanguageModelInfo(
        architecture=architecture,
        model_type=config.get("model_type") if isinstance(config.get("model_type"), str) else None,
        context_length=context_length,
        parameter_count=parameters,
        dtype=str(dtype) if dtype else None,
    )


# The model format each kind is registered and served as: the ServingRuntime's supportedModelFormats name,
# the Model Registry artifact's model_format_name and the InferenceService's modelFormat all use it, so the
# OpenShift AI dashboard can deploy a registered version on the runtime that serves it.
MODEL_FORMATS: dict[ModelKind, str] = {TEXT_TO_IMAGE: "diffusers", TEXT_GENERATION: "vLLM"}
# The ServingRuntime (gitops/base) that serves each kind: deploy's default, recorded by register.
SERVING_RUNTIMES: dict[ModelKind, str] = {TEXT_TO_IMAGE: "diffusers-runtime", TEXT_GENERATION: "vllm-runtime"}
