"""manifest.json: schema, atomic write, clear errors, verification by name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from modelpipe.errors import ChecksumMismatchError, ManifestError
from modelpipe.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestFile,
    build_manifest,
    files_digest,
    hash_files,
    manifest_sha256,
    read_manifest,
    sha256_file,
    verify_files,
    write_manifest,
)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "unet").mkdir(parents=True)
    (root / "model_index.json").write_text('{"_class_name": "X"}')
    (root / "unet" / "config.json").write_text("{}")
    (root / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x01" * 1000)
    return root


def _manifest_for(root: Path) -> Manifest:
    paths = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]
    return build_manifest(source="file:///x", revision="r", files=hash_files(root, paths))


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 5_000_000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 5_000_000).hexdigest()


def test_manifest_roundtrips_and_totals_sizes(model_dir: Path) -> None:
    manifest = _manifest_for(model_dir)
    path = write_manifest(model_dir, manifest)
    loaded = read_manifest(path)
    assert loaded == manifest
    assert loaded.total_size == sum(f.size for f in loaded.files) == 1000 + 2 + 20
    assert [f.path for f in loaded.files] == sorted(f.path for f in loaded.files)


def test_read_manifest_accepts_the_model_folder(model_dir: Path) -> None:
    write_manifest(model_dir, _manifest_for(model_dir))
    assert read_manifest(model_dir).source == "file:///x"


def test_write_manifest_leaves_no_temp_files(model_dir: Path) -> None:
    write_manifest(model_dir, _manifest_for(model_dir))
    write_manifest(model_dir, _manifest_for(model_dir))
    assert sorted(p.name for p in model_dir.iterdir()) == [MANIFEST_NAME, "model_index.json", "unet"]


def test_written_manifest_is_readable_by_the_next_step_as_another_user(model_dir: Path) -> None:
    # Tekton steps may run as another UID on the same volume; a temp file's 0600 must not survive.
    path = write_manifest(model_dir, _manifest_for(model_dir))
    assert path.stat().st_mode & 0o777 == 0o644


def test_read_manifest_missing_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest\.json does not exist"):
        read_manifest(tmp_path)


def test_read_manifest_corrupt_json_is_a_manifest_error(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text('{"source": ')
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_read_manifest_schema_violation_names_the_field(model_dir: Path) -> None:
    data = json.loads(_manifest_for(model_dir).model_dump_json())
    data["files"][0]["sha256"] = "nothex"
    (model_dir / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"files\.0\.sha256"):
        read_manifest(model_dir)


def test_manifest_rejects_wrong_total(model_dir: Path) -> None:
    data = json.loads(_manifest_for(model_dir).model_dump_json())
    data["total_size"] += 1
    with pytest.raises(ValueError, match="total_size"):
        Manifest.model_validate(data)


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs", "a//b", "a\\b", "", MANIFEST_NAME, "./a"])
def test_manifest_file_rejects_unsafe_paths(bad: str) -> None:
    with pytest.raises(ValueError):
        ManifestFile(path=bad, size=1, sha256="0" * 64)


def test_manifest_rejects_duplicate_paths() -> None:
    item = ManifestFile(path="a", size=1, sha256="0" * 64)
    with pytest.raises(ValueError, match="listed twice"):
        build_manifest(source="s", revision="r", files=[item, item])


def test_verify_files_passes_on_intact_folder(model_dir: Path) -> None:
    verify_files(model_dir, _manifest_for(model_dir))


def test_verify_files_names_a_corrupted_file(model_dir: Path) -> None:
    manifest = _manifest_for(model_dir)
    (model_dir / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x02" * 1000)
    with pytest.raises(ChecksumMismatchError, match=r"unet/diffusion_pytorch_model\.safetensors sha256"):
        verify_files(model_dir, manifest)


def test_verify_files_names_a_missing_file(model_dir: Path) -> None:
    manifest = _manifest_for(model_dir)
    (model_dir / "unet" / "config.json").unlink()
    with pytest.raises(ChecksumMismatchError, match=r"unet/config\.json is missing"):
        verify_files(model_dir, manifest)


def test_verify_files_names_a_truncated_file(model_dir: Path) -> None:
    manifest = _manifest_for(model_dir)
    (model_dir / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x01" * 10)
    with pytest.raises(ChecksumMismatchError, match="has 10 bytes, manifest says 1000"):
        verify_files(model_dir, manifest)


def test_manifest_sha256_is_sha_of_file_bytes(model_dir: Path) -> None:
    path = write_manifest(model_dir, _manifest_for(model_dir))
    assert manifest_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest_sha256(model_dir) == manifest_sha256(path)


def test_files_digest_ignores_creation_time(model_dir: Path) -> None:
    first, second = _manifest_for(model_dir), _manifest_for(model_dir)
    assert first.created != second.created or first == second
    assert files_digest(first.files) == files_digest(second.files)
    changed = [*first.files[:-1], first.files[-1].model_copy(update={"size": 1})]
    assert files_digest(changed) != files_digest(first.files)


def test_verify_files_hash_only_skips_hashing_but_still_checks_sizes(model_dir: Path) -> None:
    manifest = _manifest_for(model_dir)
    (model_dir / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x02" * 1000)
    verify_files(model_dir, manifest, hash_only={"unet/config.json"})
    with pytest.raises(ChecksumMismatchError, match="safetensors sha256"):
        verify_files(model_dir, manifest, hash_only={"unet/diffusion_pytorch_model.safetensors"})
    (model_dir / "model_index.json").write_text("{}")
    with pytest.raises(ChecksumMismatchError, match=r"model_index\.json has 2 bytes"):
        verify_files(model_dir, manifest, hash_only=())
