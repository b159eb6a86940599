"""Model kinds: parsing --model-kind, refusing the other kind, language-model file selection and facts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from modelpipe.errors import ModelKindError
from modelpipe.model_kinds import (
    MODEL_FORMATS,
    language_model_info,
    parse_model_kind,
    refuse_other_kind,
    select_language_model_files,
)
from safetensors.numpy import save_file

LLM_LISTING = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "additional_chat_templates/tool_use.jinja",
    "model.safetensors",
    "README.md",
    "pytorch_model.bin",
    "original/params.json",
    "qwen.tiktoken",
]


@pytest.mark.parametrize(("value", "kind"), [("", "text-to-image"), (None, "text-to-image")])
def test_empty_model_kind_means_text_to_image(value: str | None, kind: str) -> None:
    assert parse_model_kind(value) == kind


def test_unknown_model_kind_names_the_choices() -> None:
    with pytest.raises(ModelKindError) as excinfo:
        parse_model_kind("llm")
    assert excinfo.value.one_line() == (
        "--model-kind 'llm' is not a model kind (fix: use one of text-to-image, text-generation)"
    )


def test_each_kind_has_the_format_its_serving_runtime_declares() -> None:
    assert MODEL_FORMATS == {"text-to-image": "diffusers", "text-generation": "vLLM"}


def test_pipeline_wanted_as_text_generation_is_refused_with_the_kind_that_fits() -> None:
    with pytest.raises(ModelKindError) as excinfo:
        refuse_other_kind("hf://org/sd", "text-generation", ["model_index.json", "unet/config.json"])
    assert excinfo.value.one_line() == (
        "hf://org/sd is a diffusers pipeline (model_index.json), not a text-generation model "
        "(fix: pass --model-kind text-to-image for this model, or a language model source)"
    )


def test_language_model_wanted_as_text_to_image_names_its_architecture() -> None:
    with pytest.raises(ModelKindError) as excinfo:
        refuse_other_kind(
            "file:///m", "text-to-image", ["config.json"], {"architectures": ["LlamaForCausalLM"]}
        )
    assert "file:///m is a transformers model (LlamaForCausalLM)" in excinfo.value.one_line()
    assert "pass --model-kind text-generation" in excinfo.value.one_line()


def test_a_non_generating_transformers_model_is_left_to_the_diffusers_checks() -> None:
    refuse_other_kind("file:///m", "text-to-image", ["config.json"], {"architectures": ["CLIPModel"]})


def test_matching_kinds_pass() -> None:
    refuse_other_kind("x", "text-to-image", ["model_index.json"])
    refuse_other_kind("x", "text-generation", ["config.json", "model.safetensors"])


def test_selection_keeps_config_tokenizer_templates_and_safetensors_only() -> None:
    assert select_language_model_files(LLM_LISTING, None) == [
        "additional_chat_templates/tool_use.jinja",
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "qwen.tiktoken",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_selection_with_an_index_takes_exactly_the_shards_it_maps() -> None:
    listing = ["config.json", "tokenizer.json", "model.safetensors.index.json"]
    listing += [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    index = {"weight_map": {"a": "model-00001-of-00003.safetensors", "b": "model-00003-of-00003.safetensors"}}
    selected = select_language_model_files(listing, index)
    assert [name for name in selected if name.endswith(".safetensors")] == [
        "model-00001-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
    ]
    assert "model.safetensors.index.json" in selected


def test_selection_without_a_tokenizer_is_refused() -> None:
    with pytest.raises(ModelKindError, match="no tokenizer files"):
        select_language_model_files(["config.json", "model.safetensors"], None)


def test_language_model_info_counts_parameters_from_safetensors_headers(tmp_path: Path) -> None:
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "max_position_embeddings": 4096}
    (tmp_path / "config.json").write_text(json.dumps(config | {"torch_dtype": "bfloat16"}))
    save_file({"a": np.zeros((3, 4), np.float32), "b": np.zeros(5, np.float32)}, tmp_path / "m-1.safetensors")
    save_file({"c": np.zeros((2, 2, 2), np.float16)}, tmp_path / "m-2.safetensors")
    info = language_model_info(tmp_path, ["m-1.safetensors", "m-2.safetensors", "config.json"])
    assert (info.architecture, info.model_type, info.context_length) == ("LlamaForCausalLM", "llama", 4096)
    assert (info.parameter_count, info.dtype) == (12 + 5 + 8, "bfloat16")


def test_language_model_info_reads_the_context_length_of_a_nested_text_config(tmp_path: Path) -> None:
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "text_config": {"max_position_embeddings": 8192},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert language_model_info(tmp_path, []).context_length == 8192


def test_language_model_info_refuses_a_corrupt_weight_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ModelKindError, match="not a readable safetensors file"):
        language_model_info(tmp_path, ["model.safetensors"])
