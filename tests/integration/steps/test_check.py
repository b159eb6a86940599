"""`modelpipe check` on real tiny builds: every family passes, each breakage fails naming the component."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from modelpipe.cli import main
from modelpipe.demo_models import FAMILY_BUILDERS
from modelpipe.errors import ModelCheckError
from modelpipe.steps.check import check_model

from tests.fixtures.models import FamilyModels

pytestmark = pytest.mark.integration


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / src.name))


def test_every_family_build_passes(family_models: FamilyModels) -> None:
    for kind in sorted(FAMILY_BUILDERS):
        result = check_model(model_dir=family_models(kind))
        assert result.pipeline_class.endswith("Pipeline"), kind


def test_sharded_and_fp16_only_builds_pass_with_their_variant(family_models: FamilyModels) -> None:
    check_model(model_dir=family_models("tiny-sdxl", max_shard_size="20KB"))
    check_model(model_dir=family_models("tiny-turbo", variant="fp16"), variant="fp16")


def test_fp16_only_folder_without_the_variant_names_the_component(family_models: FamilyModels) -> None:
    with pytest.raises(ModelCheckError) as info:
        check_model(model_dir=family_models("tiny-turbo", variant="fp16"))
    assert info.value.component == "text_encoder" and "fp16" in info.value.message


def test_unknown_component_class_is_named(family_models: FamilyModels, tmp_path: Path) -> None:
    model = _copy(family_models("tiny-sdxl"), tmp_path)
    index = json.loads((model / "model_index.json").read_text())
    index["text_encoder_2"] = ["transformers", "CLIPTextModelFromTheFuture"]
    (model / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelCheckError) as info:
        check_model(model_dir=model)
    assert info.value.component == "text_encoder_2"


def test_t5_tokenizer_without_its_files_is_named(family_models: FamilyModels, tmp_path: Path) -> None:
    model = _copy(family_models("tiny-sd3"), tmp_path)
    (model / "tokenizer_3" / "tokenizer.json").unlink()
    with pytest.raises(ModelCheckError) as info:
        check_model(model_dir=model)
    assert info.value.component == "tokenizer_3"


def test_missing_shard_is_named(family_models: FamilyModels, tmp_path: Path) -> None:
    model = _copy(family_models("tiny-sdxl", max_shard_size="20KB"), tmp_path)
    next((model / "unet").glob("*-00002-of-*.safetensors")).unlink()
    with pytest.raises(ModelCheckError, match="shard") as info:
        check_model(model_dir=model)
    assert info.value.component == "unet"


def test_truncated_weights_are_named(family_models: FamilyModels, tmp_path: Path) -> None:
    model = _copy(family_models("tiny-flux"), tmp_path)
    (model / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(ModelCheckError) as info:
        check_model(model_dir=model)
    assert info.value.component == "vae"


def test_cli_fails_with_one_line_naming_the_component(
    family_models: FamilyModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _copy(family_models("tiny-pixart"), tmp_path)
    (model / "scheduler" / "scheduler_config.json").write_text("{not json")
    assert main(["check", "--model-dir", str(model)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "component 'scheduler'" in err
