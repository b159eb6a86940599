"""register_model for a language model: kind, architecture, size, context length and the vLLM format."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe.config import RegistrySettings
from modelpipe.errors import ConfigError
from modelpipe.steps.download import LocalSource, download_model
from modelpipe.steps.register import register_model
from pydantic import SecretStr
from safetensors import safe_open

from tests.integration.steps.test_register import official_client

pytestmark = pytest.mark.integration

MODEL_URI = "s3://models/tiny-llm/0123abcd"


def _downloaded(tiny_llm_dir: Path, dest: Path) -> Path:
    return download_model(
        source=LocalSource(tiny_llm_dir), dest=dest, model_kind="text-generation"
    ).manifest_path


def _register(server, manifest: Path, **overrides):  # -> RegisterResult
    arguments = {
        "registry": RegistrySettings(
            url=server.url, token=SecretStr(server.token) if server.token else None, author="tests"
        ),
        "model_name": "tiny-llm",
        "version_name": "1.0",
        "model_uri": MODEL_URI,
        "manifest": manifest,
        "storage_key": "models-connection",
    }
    return register_model(**(arguments | overrides))


def _parameter_count(model_dir: Path) -> int:
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as handle:
        return sum(handle.get_tensor(name).numel() for name in handle.keys())  # noqa: SIM118


def test_language_model_version_records_kind_architecture_size_and_context(
    registry_server, tiny_llm_dir: Path, tmp_path: Path
) -> None:
    manifest = _downloaded(tiny_llm_dir, tmp_path / "llm")
    _register(registry_server, manifest)
    client = official_client(registry_server)
    props = client.get_model_version("tiny-llm", "1.0").custom_properties or {}
    assert props["model_kind"] == "text-generation"
    assert props["architecture"] == "LlamaForCausalLM"
    assert props["parameter_count"] == str(_parameter_count(tiny_llm_dir))
    assert props["context_length"] == "512"
    assert props["text-generation"] == "", "the default label is the model kind"
    artifact = client.get_model_artifact("tiny-llm", "1.0")
    # What the OpenShift AI dashboard matches against the vLLM ServingRuntime's supportedModelFormats.
    assert (artifact.model_format_name, artifact.model_format_version) == ("vLLM", "1")


def test_rerun_updates_the_same_language_model_version(
    registry_server, tiny_llm_dir: Path, tmp_path: Path
) -> None:
    manifest = _downloaded(tiny_llm_dir, tmp_path / "llm")
    first = _register(registry_server, manifest)
    again = _register(registry_server, manifest)
    assert (again.action, again.model_version_id) == ("updated", first.model_version_id)


def test_expected_kind_other_than_the_downloaded_one_is_refused(
    registry_server, tiny_llm_dir: Path, tmp_path: Path
) -> None:
    manifest = _downloaded(tiny_llm_dir, tmp_path / "llm")
    with pytest.raises(ConfigError, match="records a text-generation model"):
        _register(registry_server, manifest, model_kind="text-to-image")
