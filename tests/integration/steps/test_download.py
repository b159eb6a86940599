"""download-model through huggingface_hub against a loopback fake Hub, and from file:// folders."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelpipe.cli import main
from modelpipe.errors import (
    InvalidSourceError,
    ModelKindError,
    NotADiffusersModelError,
    SourceUnavailableError,
)
from modelpipe.manifest import MANIFEST_NAME, files_digest, read_manifest, sha256_file, verify_files
from modelpipe.sources import HubSource, LocalSource
from modelpipe.steps.download import download_model
from pydantic import SecretStr

from tests.support.fake_hub import FakeHub

pytestmark = pytest.mark.integration

UNET_W = "unet/diffusion_pytorch_model.safetensors"
VAE_W = "vae/diffusion_pytorch_model.safetensors"
EXPECTED = {
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/tokenizer.json",
    "tokenizer/tokenizer_config.json",
    "unet/config.json",
    UNET_W,
    "vae/config.json",
    VAE_W,
}


def make_pipeline_folder(root: Path) -> Path:
    """A diffusers-shaped folder (random bytes as weights) plus files a download must skip."""
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.0",
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    files: dict[str, bytes] = {
        "model_index.json": json.dumps(index).encode(),
        "README.md": b"# tiny\n",
        "sample.png": os.urandom(2048),
        "v1-pruned.ckpt": os.urandom(4096),
        "scheduler/scheduler_config.json": b'{"num_train_timesteps": 1000}',
        "text_encoder/config.json": b'{"hidden_size": 32}',
        "text_encoder/model.safetensors": os.urandom(30_000),
        "text_encoder/model.fp16.safetensors": os.urandom(15_000),
        "text_encoder/pytorch_model.bin": os.urandom(30_000),
        "tokenizer/tokenizer.json": b'{"model": {}}',
        "tokenizer/tokenizer_config.json": b"{}",
        "unet/config.json": b'{"sample_size": 8}',
        UNET_W: os.urandom(200_000),
        "unet/diffusion_pytorch_model.fp16.safetensors": os.urandom(100_000),
        "unet/diffusion_flax_model.msgpack": os.urandom(1000),
        "vae/config.json": b'{"latent_channels": 4}',
        VAE_W: os.urandom(50_000),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return make_pipeline_folder(tmp_path / "repo")


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as fake:
        yield fake


def _download(hub: FakeHub, dest: Path, **kwargs: object) -> object:
    source = kwargs.pop("source", HubSource("org/tiny", "main"))
    return download_model(source=source, dest=dest, endpoint=hub.endpoint, **kwargs)  # type: ignore[arg-type]


def _listing(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_hub_download_fetches_only_pipeline_files_at_the_resolved_commit(
    hub: FakeHub, repo_dir: Path, tmp_path: Path
) -> None:
    sha = hub.add_repo("org/tiny", repo_dir)
    result = _download(hub, tmp_path / "dest")
    assert result.revision == sha
    assert _listing(tmp_path / "dest") == EXPECTED | {MANIFEST_NAME}
    manifest = read_manifest(tmp_path / "dest")
    assert (manifest.source, manifest.revision) == ("hf://org/tiny", sha)
    assert {f.path: f.sha256 for f in manifest.files} == {p: sha256_file(repo_dir / p) for p in EXPECTED}
    assert result.total_bytes == manifest.total_size == sum((repo_dir / p).stat().st_size for p in EXPECTED)
    assert all(f"/resolve/{sha}/" in path for path in hub.gets()), (
        "files must be fetched at the pinned commit"
    )


def test_hub_rerun_fetches_nothing_and_keeps_the_manifest_bytes(
    hub: FakeHub, repo_dir: Path, tmp_path: Path
) -> None:
    hub.add_repo("org/tiny", repo_dir)
    first = _download(hub, tmp_path / "dest")
    gets_before = len(hub.gets())
    again = _download(hub, tmp_path / "dest")
    assert len(hub.gets()) == gets_before
    assert (again.bytes_fetched, again.bytes_reused) == (0, first.total_bytes)
    assert again.manifest_sha256 == first.manifest_sha256


def test_hub_corrupted_local_file_is_fetched_again_alone(
    hub: FakeHub, repo_dir: Path, tmp_path: Path
) -> None:
    hub.add_repo("org/tiny", repo_dir)
    _download(hub, tmp_path / "dest")
    (tmp_path / "dest" / UNET_W).write_bytes(os.urandom(200_000))
    gets_before = len(hub.gets())
    result = _download(hub, tmp_path / "dest")
    assert [p.rsplit("/", 2)[-2:] for p in hub.gets()[gets_before:]] == [UNET_W.split("/")]
    assert result.bytes_fetched == 200_000
    verify_files(tmp_path / "dest", read_manifest(tmp_path / "dest"))


def test_hub_interrupted_download_rerun_fetches_only_the_rest(
    hub: FakeHub, repo_dir: Path, tmp_path: Path
) -> None:
    hub.add_repo("org/tiny", repo_dir)
    # 403 rather than 5xx: huggingface_hub retries 5xx with backoff for ~20 s before giving up.
    hub.fail_status[VAE_W] = 403
    with pytest.raises(SourceUnavailableError, match=rf"{VAE_W}: the Hub answered HTTP 403"):
        _download(hub, tmp_path / "dest")
    assert not (tmp_path / "dest" / MANIFEST_NAME).exists()
    del hub.fail_status[VAE_W]
    gets_before = len(hub.gets())
    result = _download(hub, tmp_path / "dest")
    assert [p.endswith(VAE_W) for p in hub.gets()[gets_before:]] == [True]
    assert result.bytes_fetched == 50_000


def test_hub_dropped_connection_is_retried_and_the_file_verifies(
    hub: FakeHub, repo_dir: Path, tmp_path: Path
) -> None:
    hub.add_repo("org/tiny", repo_dir)
    hub.cut_after[UNET_W] = 65_536
    _download(hub, tmp_path / "dest")
    assert len([r for r in hub.requests if r.path.endswith(UNET_W) and r.method == "GET"]) == 2
    assert sha256_file(tmp_path / "dest" / UNET_W) == sha256_file(repo_dir / UNET_W)


def test_hub_changed_revision_removes_the_old_manifest_until_complete(
    hub: FakeHub, repo_dir: Path, tmp_path: Path
) -> None:
    hub.add_repo("org/tiny", repo_dir)
    _download(hub, tmp_path / "dest")
    (repo_dir / UNET_W).write_bytes(os.urandom(200_000))
    (repo_dir / VAE_W).write_bytes(os.urandom(50_000))
    hub.add_repo("org/tiny", repo_dir)
    hub.fail_status[VAE_W] = 403
    with pytest.raises(SourceUnavailableError):
        _download(hub, tmp_path / "dest")
    assert not (tmp_path / "dest" / MANIFEST_NAME).exists(), "a half-updated folder must not keep a manifest"


def test_hub_fp16_variant_fetches_variant_weights(hub: FakeHub, repo_dir: Path, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", repo_dir)
    _download(hub, tmp_path / "dest", variant="fp16")
    weights = sorted(p for p in _listing(tmp_path / "dest") if p.endswith(".safetensors"))
    assert weights == [
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        VAE_W,  # no fp16 file for the VAE: its default weights
    ]
    assert read_manifest(tmp_path / "dest").variant == "fp16"


def test_hub_private_repo_needs_the_token_which_is_never_logged(
    hub: FakeHub, repo_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = "hf_private_token_abcdef123456"
    hub.add_repo("org/tiny", repo_dir, token=token)
    with pytest.raises(InvalidSourceError) as excinfo:
        _download(hub, tmp_path / "dest")
    assert "HF_TOKEN" in excinfo.value.one_line()
    caplog.set_level(logging.DEBUG)
    _download(hub, tmp_path / "dest", token=SecretStr(token))
    downloads = [r for r in hub.requests if "/resolve/" in r.path]
    assert downloads and all(r.authorization == f"Bearer {token}" for r in downloads)
    assert token not in caplog.text


def test_hub_repo_without_model_index_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    (plain / "model.safetensors").write_bytes(b"\0" * 100)
    hub.add_repo("org/plain", plain)
    # A transformers folder: the refusal names the model kind that may fit.
    with pytest.raises(ModelKindError, match="not a text-to-image diffusers pipeline"):
        _download(hub, tmp_path / "dest", source=HubSource("org/plain", "main"))
    assert not (tmp_path / "dest" / MANIFEST_NAME).exists()


def test_hub_unknown_revision_is_named(hub: FakeHub, repo_dir: Path, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", repo_dir)
    with pytest.raises(InvalidSourceError, match="revision 'v9' not found"):
        _download(hub, tmp_path / "dest", source=HubSource("org/tiny", "v9"))


def test_file_source_links_selected_files_and_rerun_copies_nothing(repo_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    result = download_model(source=LocalSource(repo_dir), dest=dest)
    assert _listing(dest) == EXPECTED | {MANIFEST_NAME}
    assert os.path.samefile(dest / UNET_W, repo_dir / UNET_W), "same filesystem: hard link, no copy"
    manifest = read_manifest(dest)
    assert manifest.source == repo_dir.as_uri() and manifest.revision == files_digest(manifest.files)
    assert result.revision == manifest.revision
    again = download_model(source=LocalSource(repo_dir), dest=dest)
    assert again.bytes_fetched == 0 and again.manifest_sha256 == result.manifest_sha256


def test_corrupt_manifest_in_dest_is_rewritten_without_fetching_again(repo_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    first = download_model(source=LocalSource(repo_dir), dest=dest)
    (dest / MANIFEST_NAME).write_text('{"source": ')
    again = download_model(source=LocalSource(repo_dir), dest=dest)
    assert again.bytes_fetched == 0 and read_manifest(dest).revision == first.revision


def test_file_source_that_is_not_a_pipeline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.safetensors").write_bytes(b"\0")
    with pytest.raises(NotADiffusersModelError, match=r"no model_index\.json"):
        download_model(source=LocalSource(tmp_path / "src"), dest=tmp_path / "dest")
    with pytest.raises(InvalidSourceError, match="is not a folder"):
        download_model(source=LocalSource(tmp_path / "missing"), dest=tmp_path / "dest")


def test_cli_downloads_from_hf_endpoint_and_writes_results(
    hub: FakeHub,
    repo_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sha = hub.add_repo("org/tiny", repo_dir)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    argv = ["download", "--source", "hf://org/tiny@main", "--model-dir", str(tmp_path / "dest")]
    assert main([*argv, "--results-dir", str(tmp_path / "results")]) == 0
    assert (tmp_path / "results" / "SOURCE_REVISION").read_text() == sha
    assert (tmp_path / "results" / "MANIFEST_SHA256").read_text() == sha256_file(
        tmp_path / "dest" / MANIFEST_NAME
    )
    assert f"SOURCE_REVISION: {sha}" in capsys.readouterr().out


def test_cli_unreachable_hub_exits_1_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.tools import free_port

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert main(["download", "--source", "hf://org/tiny", "--model-dir", str(tmp_path / "dest")]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Hub" in err and "HF_ENDPOINT" in err and "Traceback" not in err


def test_downloaded_tiny_pipeline_loads_with_diffusers(
    hub: FakeHub, tiny_sd_dir: Path, tmp_path: Path
) -> None:
    from diffusers import DiffusionPipeline

    hub.add_repo("org/tiny-sd", tiny_sd_dir)
    _download(hub, tmp_path / "dest", source=HubSource("org/tiny-sd", "main"))
    pipeline = DiffusionPipeline.from_pretrained(tmp_path / "dest")
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(pipeline.components)


def test_hub_download_cleans_its_bookkeeping_but_not_a_hub_cache_in_dest(
    hub: FakeHub, repo_dir: Path, tmp_path: Path
) -> None:
    hub.add_repo("org/tiny", repo_dir)
    token_file = tmp_path / "home" / ".cache" / "huggingface" / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text("hf_user_login_token")
    _download(hub, tmp_path / "home")
    assert token_file.read_text() == "hf_user_login_token"
    assert not (tmp_path / "home" / ".cache" / "huggingface" / "download").exists()
