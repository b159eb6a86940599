"""Which files download-model fetches, and how --source/--revision are read."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe.errors import ConfigError, InvalidSourceError, NotADiffusersModelError
from modelpipe.model_files import pipeline_components, select_files
from modelpipe.sources import HubSource, LocalSource, parse_source

SD_COMPONENTS = ["scheduler", "text_encoder", "tokenizer", "unet", "vae"]

# A listing shaped like runwayml/stable-diffusion-v1-5: every format, variants, docs, a top-level checkpoint.
SD_REPO = [
    ".gitattributes",
    "README.md",
    "model_index.json",
    "v1-5-pruned-emaonly.ckpt",
    "v1-5-pruned-emaonly.safetensors",
    "v1-inference.yaml",
    "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json",
    "safety_checker/model.safetensors",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/pytorch_model.bin",
    "text_encoder/flax_model.msgpack",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.non_ema.bin",
    "unet/diffusion_flax_model.msgpack",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.bin",
    "vae/onnx/model.onnx",
    "images/sample.png",
]


def test_default_selection_is_configs_tokenizer_and_safetensors_only() -> None:
    assert select_files(SD_REPO, SD_COMPONENTS) == [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]


def test_fp16_variant_replaces_default_weights() -> None:
    selected = select_files(SD_REPO, SD_COMPONENTS, variant="fp16")
    weights = [p for p in selected if p.endswith(".safetensors")]
    assert weights == [
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]


def test_variant_missing_for_a_component_falls_back_to_its_default_weights() -> None:
    listing = [p for p in SD_REPO if p != "vae/diffusion_pytorch_model.fp16.safetensors"]
    selected = select_files(listing, SD_COMPONENTS, variant="fp16")
    assert "vae/diffusion_pytorch_model.safetensors" in selected
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in selected


def test_bin_is_used_only_when_a_component_has_no_safetensors() -> None:
    listing = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/x.ckpt"]
    assert select_files(listing, ["unet"]) == [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.bin",
    ]


def test_sharded_weights_keep_every_shard_and_the_matching_index() -> None:
    listing = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.bin.index.json",
        "unet/diffusion_pytorch_model-00001-of-00002.bin",
    ]
    assert select_files(listing, ["unet"]) == [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
    ]
    fp16 = select_files(listing, ["unet"], variant="fp16")
    assert fp16[2:] == [
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
    ]


def test_missing_model_index_is_not_a_diffusers_model() -> None:
    with pytest.raises(NotADiffusersModelError, match=r"no model_index\.json"):
        select_files(["config.json", "model.safetensors"], [])


def test_component_without_folder_is_refused_by_name() -> None:
    with pytest.raises(NotADiffusersModelError, match="'vae'"):
        select_files(["model_index.json", "unet/config.json", "unet/w.safetensors"], ["unet", "vae"])


def test_component_with_only_ckpt_weights_is_refused() -> None:
    with pytest.raises(NotADiffusersModelError, match=r"'unet' has no safetensors or \.bin"):
        select_files(["model_index.json", "unet/config.json", "unet/model.ckpt"], ["unet"])


def test_only_variant_weights_without_variant_asks_for_it() -> None:
    listing = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors"]
    with pytest.raises(NotADiffusersModelError, match="only has weights for variant") as excinfo:
        select_files(listing, ["unet"])
    assert "--variant fp16" in excinfo.value.one_line()


def test_pipeline_components_ignore_private_keys_and_null_components() -> None:
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.0",
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
    }
    assert pipeline_components(index) == ["tokenizer", "unet"]


def test_model_index_without_components_is_refused() -> None:
    with pytest.raises(NotADiffusersModelError, match="no pipeline components"):
        pipeline_components({"_class_name": "X"})


@pytest.mark.parametrize(
    ("uri", "revision", "expected"),
    [
        ("hf://org/repo", None, HubSource("org/repo", "main")),
        ("hf://org/repo@v1.0", None, HubSource("org/repo", "v1.0")),
        ("hf://org/repo", "abc123", HubSource("org/repo", "abc123")),
        ("hf://org/repo@abc123", "abc123", HubSource("org/repo", "abc123")),
        ("file:///models/tiny", None, LocalSource(Path("/models/tiny"))),
    ],
)
def test_parse_source(uri: str, revision: str | None, expected: object) -> None:
    assert parse_source(uri, revision) == expected


def test_revision_contradicting_uri_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="contradicts"):
        parse_source("hf://org/repo@v1", "v2")


@pytest.mark.parametrize("uri", ["s3://bucket/x", "hf://bad repo/x", "file://relative/dir", "org/repo"])
def test_unusable_source_uri_is_refused(uri: str) -> None:
    with pytest.raises(InvalidSourceError):
        parse_source(uri)


def test_revision_with_file_source_is_refused() -> None:
    with pytest.raises(ConfigError, match="hf:// sources only"):
        parse_source("file:///models/tiny", "main")
