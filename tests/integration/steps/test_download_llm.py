"""download-model for language models (--model-kind text-generation), from a loopback fake Hub and folders."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelpipe.cli import main
from modelpipe.errors import ModelKindError
from modelpipe.manifest import MANIFEST_NAME, read_manifest, sha256_file
from modelpipe.steps.download import HubSource, LocalSource, download_model

from tests.integration.steps.test_download import make_pipeline_folder
from tests.support.fake_hub import FakeHub

pytestmark = pytest.mark.integration

SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
EXPECTED = {
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "model.safetensors.index.json",
    *SHARDS,
}


def make_llm_folder(root: Path) -> Path:
    """A sharded causal-LM-shaped repository (random bytes as weights) plus files a download must skip."""
    index = {
        "metadata": {"total_size": 300_000},
        "weight_map": {"a.weight": SHARDS[0], "b.weight": SHARDS[1]},
    }
    files: dict[str, bytes] = {
        "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}).encode(),
        "generation_config.json": b'{"eos_token_id": 2}',
        "tokenizer.json": b'{"model": {}}',
        "tokenizer_config.json": b"{}",
        "special_tokens_map.json": b"{}",
        "chat_template.jinja": b"{% for m in messages %}{{ m['content'] }}{% endfor %}",
        "model.safetensors.index.json": json.dumps(index).encode(),
        SHARDS[0]: os.urandom(200_000),
        SHARDS[1]: os.urandom(100_000),
        "README.md": b"# tiny llm\n",
        ".gitattributes": b"*.safetensors filter=lfs\n",
        "pytorch_model.bin": os.urandom(30_000),
        "model-q4.gguf": os.urandom(10_000),
        "original/consolidated.00.pth": os.urandom(10_000),
        "onnx/model.onnx": os.urandom(5_000),
        "assets/logo.png": os.urandom(2_000),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as fake:
        yield fake


def _listing(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _fetched(hub: FakeHub) -> list[str]:
    return [r.path for r in hub.requests if "/resolve/" in r.path and r.method == "GET"]


def test_hub_language_model_fetches_config_tokenizer_template_and_shards_only(
    hub: FakeHub, tmp_path: Path
) -> None:
    repo = make_llm_folder(tmp_path / "repo")
    sha = hub.add_repo("org/llm", repo)
    result = download_model(
        source=HubSource("org/llm", "main"),
        dest=tmp_path / "dest",
        endpoint=hub.endpoint,
        model_kind="text-generation",
    )
    assert _listing(tmp_path / "dest") == EXPECTED | {MANIFEST_NAME}
    manifest = read_manifest(tmp_path / "dest")
    assert (manifest.model_kind, manifest.revision, result.model_kind) == (
        "text-generation",
        sha,
        "text-generation",
    )
    assert {f.path: f.sha256 for f in manifest.files} == {p: sha256_file(repo / p) for p in EXPECTED}
    assert all(f"/resolve/{sha}/" in path for path in _fetched(hub))


def test_hub_language_model_rerun_fetches_nothing(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo("org/llm", make_llm_folder(tmp_path / "repo"))
    kwargs = {"source": HubSource("org/llm", "main"), "dest": tmp_path / "dest", "endpoint": hub.endpoint}
    first = download_model(**kwargs, model_kind="text-generation")  # type: ignore[arg-type]
    gets = len(_fetched(hub))
    again = download_model(**kwargs, model_kind="text-generation")  # type: ignore[arg-type]
    assert len(_fetched(hub)) == gets
    assert (again.bytes_fetched, again.manifest_sha256) == (0, first.manifest_sha256)


def test_hub_diffusers_pipeline_given_text_generation_is_refused_before_any_file(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.add_repo("org/tiny-sd", make_pipeline_folder(tmp_path / "repo"))
    with pytest.raises(ModelKindError) as excinfo:
        download_model(
            source=HubSource("org/tiny-sd", "main"),
            dest=tmp_path / "dest",
            endpoint=hub.endpoint,
            model_kind="text-generation",
        )
    line = excinfo.value.one_line()
    assert "is a diffusers pipeline (model_index.json), not a text-generation model" in line
    assert "--model-kind text-to-image" in line
    assert _fetched(hub) == []


def test_hub_language_model_given_text_to_image_is_refused_before_any_file(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.add_repo("org/llm", make_llm_folder(tmp_path / "repo"))
    with pytest.raises(ModelKindError) as excinfo:
        download_model(source=HubSource("org/llm", "main"), dest=tmp_path / "dest", endpoint=hub.endpoint)
    assert "not a text-to-image diffusers pipeline" in excinfo.value.one_line()
    assert "--model-kind text-generation" in excinfo.value.one_line()
    assert _fetched(hub) == []


def test_hub_language_model_with_pytorch_bin_only_is_refused_naming_safetensors(
    hub: FakeHub, tmp_path: Path
) -> None:
    repo = make_llm_folder(tmp_path / "repo")
    for name in ("model.safetensors.index.json", *SHARDS):
        (repo / name).unlink()
    hub.add_repo("org/llm", repo)
    with pytest.raises(ModelKindError, match=r"no safetensors weights .*; only .*pytorch_model\.bin"):
        download_model(
            source=HubSource("org/llm", "main"),
            dest=tmp_path / "dest",
            endpoint=hub.endpoint,
            model_kind="text-generation",
        )
    assert not (tmp_path / "dest" / MANIFEST_NAME).exists()


def test_folder_whose_index_names_a_missing_shard_is_refused(tmp_path: Path) -> None:
    repo = make_llm_folder(tmp_path / "repo")
    (repo / SHARDS[1]).unlink()
    with pytest.raises(ModelKindError, match=f"shards that are not there: {SHARDS[1]}"):
        download_model(source=LocalSource(repo), dest=tmp_path / "dest", model_kind="text-generation")


def test_folder_with_a_non_generating_architecture_is_refused(tmp_path: Path) -> None:
    repo = make_llm_folder(tmp_path / "repo")
    (repo / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    with pytest.raises(ModelKindError, match="BertForSequenceClassification, none of which generates text"):
        download_model(source=LocalSource(repo), dest=tmp_path / "dest", model_kind="text-generation")


def test_tiny_llm_folder_imports_whole_and_rerun_copies_nothing(tiny_llm_dir: Path, tmp_path: Path) -> None:
    first = download_model(
        source=LocalSource(tiny_llm_dir), dest=tmp_path / "dest", model_kind="text-generation"
    )
    assert _listing(tmp_path / "dest") == _listing(tiny_llm_dir) | {MANIFEST_NAME}
    again = download_model(
        source=LocalSource(tiny_llm_dir), dest=tmp_path / "dest", model_kind="text-generation"
    )
    assert (again.bytes_fetched, again.bytes_reused) == (0, first.total_bytes)


def test_cli_refuses_tiny_llm_as_text_to_image_naming_its_architecture(
    tiny_llm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["download", "--source", tiny_llm_dir.as_uri(), "--model-dir", str(tmp_path / "dest")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "(LlamaForCausalLM)" in err[0] and "--model-kind text-generation" in err[0]
    assert not (tmp_path / "dest" / MANIFEST_NAME).exists()


def test_cli_refuses_a_variant_for_a_language_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "download",
            "--source",
            make_llm_folder(tmp_path / "repo").as_uri(),
            "--model-dir",
            str(tmp_path / "dest"),
            "--model-kind",
            "text-generation",
            "--variant",
            "fp16",
        ]
    )
    assert code == 1
    assert "--variant applies to text-to-image models only" in capsys.readouterr().err
