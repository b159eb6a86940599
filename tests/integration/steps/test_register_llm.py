"""register_model for a language model: kind, architecture, size, context length and the vLLM format."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from modelpipe.config import RegistrySettings
from modelpipe.errors import ConfigError
from modelpipe.steps.download import LocalSource, download_model
from modelpipe.steps.register import register_model
from pydantic import SecretStr
from safetensors import safe_open

from tests.integration.steps.test_register import DIGEST, official_client, write_model
from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration

MODEL_URI = "s3://models/tiny-llm/0123abcd"
# What build-runtime passes on: the pipeline hands it to register for every kind.
DIFFUSERS_IMAGE = f"quay.io/acme/diffusers-runtime@{DIGEST}"


def _pinned_vllm_image() -> str:
    """The vLLM ServingRuntime's image as gitops/base pins it (its one home: the `images:` entry)."""
    kustomization = yaml.safe_load((REPO_ROOT / "gitops/base/kustomization.yaml").read_text())
    (entry,) = [image for image in kustomization["images"] if image["name"] == "quay.io/modh/vllm"]
    return f"{entry.get('newName', entry['name'])}@{entry['digest']}"


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


@pytest.mark.parametrize(
    ("kind", "runtime", "image"),
    [
        ("text-to-image", "diffusers-runtime", DIFFUSERS_IMAGE),
        ("text-generation", "vllm-runtime", _pinned_vllm_image()),
    ],
)
def test_each_kind_records_the_runtime_and_image_that_serve_it(
    registry_server, tiny_llm_dir: Path, tmp_path: Path, kind: str, runtime: str, image: str
) -> None:
    if kind == "text-generation":
        manifest = _downloaded(tiny_llm_dir, tmp_path / "llm")
    else:
        manifest = write_model(tmp_path / "sd")
    _register(
        registry_server,
        manifest,
        runtime_image=DIFFUSERS_IMAGE,
        vllm_runtime_image=_pinned_vllm_image(),
    )
    props = official_client(registry_server).get_model_version("tiny-llm", "1.0").custom_properties or {}
    assert props["model_kind"] == kind
    assert props["serving_runtime"] == runtime
    assert props["runtime_image"] == image
    assert props["runtime_image_digest"] == image.partition("@")[2]


def test_language_model_with_unknown_vllm_image_drops_the_diffusers_image_an_old_run_recorded(
    registry_server, tiny_llm_dir: Path, tmp_path: Path
) -> None:
    manifest = _downloaded(tiny_llm_dir, tmp_path / "llm")
    _register(registry_server, manifest)
    client = official_client(registry_server)
    # What register wrote on language models before it knew which runtime serves them.
    version = client.get_model_version("tiny-llm", "1.0")
    version.custom_properties = {
        **(version.custom_properties or {}),
        "runtime_image": DIFFUSERS_IMAGE,
        "runtime_image_digest": DIGEST,
    }
    client.update(version)
    again = _register(registry_server, manifest, runtime_image=DIFFUSERS_IMAGE)
    assert again.action == "updated"
    props = client.get_model_version("tiny-llm", "1.0").custom_properties or {}
    assert "runtime_image" not in props and "runtime_image_digest" not in props
    assert props["serving_runtime"] == "vllm-runtime"
    assert props["architecture"] == "LlamaForCausalLM", "the other properties are kept"
