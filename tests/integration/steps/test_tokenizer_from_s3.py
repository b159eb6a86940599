"""evaluate/benchmark --tokenizer s3://...: only the tokenizer files come down, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe.config import S3Settings
from modelpipe.errors import ConfigError
from modelpipe.manifest import sha256_file
from modelpipe.s3 import S3Location, make_s3_client
from modelpipe.tokenizer_files import resolve_tokenizer
from modelpipe.uploads import UploadItem, upload_files

from tests.fixtures.s3 import S3Endpoint

pytestmark = pytest.mark.integration

MODEL_FILES = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "tokenizer.json": b'{"version": "1.0"}',
    "tokenizer_config.json": b'{"chat_template": "{{ messages }}"}',
    "model.safetensors": b"\0" * 4096,
    "manifest.json": b"{}",
}


def _upload(s3_server: S3Endpoint, prefix: str, files: dict[str, bytes], tmp_path: Path) -> None:
    """As `modelpipe upload` writes them: with the sha256 metadata a re-download check compares."""
    items = []
    for name, data in files.items():
        path = tmp_path / "src" / prefix / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        location = S3Location(s3_server.bucket, f"{prefix}/{name}")
        items.append(UploadItem(path=path, location=location, sha256=sha256_file(path), size=len(data)))
    upload_files(make_s3_client(S3Settings.from_env(s3_server.env)), items)


def test_only_tokenizer_files_are_fetched_and_a_rerun_fetches_nothing(
    s3_server: S3Endpoint, tmp_path: Path
) -> None:
    _upload(s3_server, "tiny-llm/v1", MODEL_FILES, tmp_path)
    settings = S3Settings.from_env(s3_server.env)
    folder = resolve_tokenizer(
        f"s3://{s3_server.bucket}/tiny-llm/v1", cache_dir=tmp_path / "tok", s3=settings
    )
    assert sorted(path.name for path in folder.iterdir()) == [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert (folder / "tokenizer.json").read_bytes() == MODEL_FILES["tokenizer.json"]
    stamps = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    resolve_tokenizer(f"s3://{s3_server.bucket}/tiny-llm/v1", cache_dir=tmp_path / "tok", s3=settings)
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == stamps


def test_a_prefix_without_tokenizer_is_refused(s3_server: S3Endpoint, tmp_path: Path) -> None:
    _upload(s3_server, "tiny-sd/v1", {"model_index.json": b"{}"}, tmp_path)
    with pytest.raises(ConfigError, match="no tokenizer under"):
        resolve_tokenizer(
            f"s3://{s3_server.bucket}/tiny-sd/v1",
            cache_dir=tmp_path / "tok",
            s3=S3Settings.from_env(s3_server.env),
        )
