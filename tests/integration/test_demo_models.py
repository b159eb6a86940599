"""`modelpipe demo-model` family builds: byte-identical on every build, and the Hub's weight layouts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from modelpipe.cli import main
from modelpipe.demo_models import FAMILY_BUILDERS

from tests.fixtures.models import FamilyModels

pytestmark = pytest.mark.integration


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("kind", sorted(FAMILY_BUILDERS))
def test_family_build_is_byte_identical_every_time(
    kind: str, family_models: FamilyModels, tmp_path: Path
) -> None:
    assert main(["demo-model", kind, str(tmp_path / kind)]) == 0
    assert _digests(tmp_path / kind) == _digests(family_models(kind))


def test_turbo_ships_default_and_fp16_weights_like_sd_turbo(family_models: FamilyModels) -> None:
    weights = {p.name for p in (family_models("tiny-turbo") / "unet").glob("*.safetensors")}
    assert weights == {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}


def test_variant_only_build_has_no_default_weights(tmp_path: Path) -> None:
    assert main(["demo-model", "tiny-turbo", "--variant", "fp16", str(tmp_path / "m")]) == 0
    weights = sorted(str(p.relative_to(tmp_path / "m")) for p in (tmp_path / "m").rglob("*.safetensors"))
    assert weights == [
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]


def test_sharded_build_writes_an_index_per_component(tmp_path: Path) -> None:
    assert main(["demo-model", "tiny-sd3", "--max-shard-size", "20KB", str(tmp_path / "m")]) == 0
    index = json.loads(
        (tmp_path / "m/transformer/diffusion_pytorch_model.safetensors.index.json").read_text()
    )
    shards = set(index["weight_map"].values())
    assert len(shards) > 1 and all((tmp_path / "m/transformer" / s).is_file() for s in shards)


def test_variant_flag_is_refused_for_tiny_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-model", "tiny-clip", "--variant", "fp16", str(tmp_path / "m")]) == 1
    assert "--variant" in capsys.readouterr().err
