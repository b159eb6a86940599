"""register_model and `modelpipe register` against the local registry server, checked with the client."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from model_registry import ModelRegistry
from model_registry.types import ModelArtifact, ModelVersion, RegisteredModel
from modelpipe.config import RegistrySettings
from modelpipe.errors import RegistryError, VersionConflictError
from modelpipe.manifest import build_manifest, hash_files, write_manifest
from modelpipe.steps.register import RegisterResult, register_model
from pydantic import SecretStr

from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration

DIGEST = "sha256:" + "cd" * 32
MODEL_URI = "s3://models/tiny-sd/0123abcd"


def write_model(folder: Path, content: str = '{"_class_name": "StableDiffusionPipeline"}') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(content)
    files = hash_files(folder, ["model_index.json"])
    return write_manifest(
        folder,
        build_manifest(source="hf://org/tiny-sd", revision="0123abcd", files=files),
    )


def register(server, manifest: Path, **overrides) -> RegisterResult:
    arguments = {
        "registry": RegistrySettings(
            url=server.url,
            token=SecretStr(server.token) if server.token else None,
            author="tests",
        ),
        "model_name": "tiny-sd",
        "version_name": "1.0",
        "model_uri": MODEL_URI,
        "manifest": manifest,
        "runtime_image": f"quay.io/acme/diffusers-runtime@{DIGEST}",
        "storage_key": "models-connection",
        "pipeline_run": "import-run-1",
    }
    arguments.update(overrides)
    return register_model(**arguments)


def official_client(server) -> ModelRegistry:
    with warnings.catch_warnings():
        # The client warns when a local server needs no token.
        warnings.filterwarnings("ignore", message="User access token is missing")
        return ModelRegistry(server.url, author="checker", is_secure=False, user_token=server.token)


def test_first_run_registers_model_version_and_artifact_with_properties(
    registry_server, tmp_path: Path
) -> None:
    result = register(registry_server, write_model(tmp_path / "m"), labels=("text-to-image", "demo"))
    assert result.action == "created"
    client = official_client(registry_server)
    version = client.get_model_version("tiny-sd", "1.0")
    artifact = client.get_model_artifact("tiny-sd", "1.0")
    assert version is not None and artifact is not None
    assert (version.id, version.registered_model_id, artifact.id) == (
        result.model_version_id,
        result.registered_model_id,
        result.model_artifact_id,
    )
    assert artifact.uri == MODEL_URI
    assert (
        artifact.model_format_name,
        artifact.storage_key,
        artifact.storage_path,
    ) == (
        "diffusers",
        "models-connection",
        "tiny-sd/0123abcd",
    )
    props = version.custom_properties
    assert props["source"] == "hf://org/tiny-sd" and props["source_revision"] == "0123abcd"
    assert props["runtime_image_digest"] == DIGEST and props["pipeline_run"] == "import-run-1"
    assert isinstance(props["size_bytes"], str)
    assert props["text-to-image"] == "" and props["demo"] == ""
    assert client.get_registered_model("tiny-sd").custom_properties["text-to-image"] == ""


def test_second_run_updates_the_same_version(registry_server, tmp_path: Path) -> None:
    manifest = write_model(tmp_path / "m")
    first = register(registry_server, manifest)
    second = register(registry_server, manifest, pipeline_run="import-run-2")
    assert second.action == "updated"
    assert (
        second.registered_model_id,
        second.model_version_id,
        second.model_artifact_id,
    ) == (
        first.registered_model_id,
        first.model_version_id,
        first.model_artifact_id,
    )
    client = official_client(registry_server)
    assert [v.name for v in client.get_model_versions("tiny-sd")] == ["1.0"]
    assert client.get_model_version("tiny-sd", "1.0").custom_properties["pipeline_run"] == "import-run-2"


def test_rerun_keeps_properties_written_by_others(registry_server, tmp_path: Path) -> None:
    manifest = write_model(tmp_path / "m")
    register(registry_server, manifest)
    client = official_client(registry_server)
    version = client.get_model_version("tiny-sd", "1.0")
    version.custom_properties = {
        **version.custom_properties,
        "benchmarked": "",
        "benchmark_clip_score": 31.5,
    }
    client.update(version)
    register(registry_server, manifest)
    props = client.get_model_version("tiny-sd", "1.0").custom_properties
    assert props["benchmarked"] == "" and props["benchmark_clip_score"] == 31.5


def test_same_version_with_other_artifact_uri_is_refused(registry_server, tmp_path: Path) -> None:
    manifest = write_model(tmp_path / "m")
    register(registry_server, manifest)
    with pytest.raises(VersionConflictError) as caught:
        register(registry_server, manifest, model_uri="s3://models/tiny-sd/other")
    assert MODEL_URI in str(caught.value) and "s3://models/tiny-sd/other" in str(caught.value)
    artifact = official_client(registry_server).get_model_artifact("tiny-sd", "1.0")
    assert artifact.uri == MODEL_URI


def test_same_version_with_other_model_content_is_refused(registry_server, tmp_path: Path) -> None:
    register(registry_server, write_model(tmp_path / "a"))
    with pytest.raises(VersionConflictError, match="manifest sha256"):
        register(registry_server, write_model(tmp_path / "b", content='{"changed": 1}'))


def test_version_left_without_artifact_is_completed(registry_server, tmp_path: Path) -> None:
    client = official_client(registry_server)
    # What the client's non-atomic register_model leaves when it dies before the artifact POST.
    model = client.async_runner(
        client._api.upsert_registered_model(RegisteredModel(name="tiny-sd", owner="x"))
    )
    client.async_runner(client._api.upsert_model_version(ModelVersion(name="1.0", author="x"), model.id))
    assert client.get_model_artifact("tiny-sd", "1.0") is None

    result = register(registry_server, write_model(tmp_path / "m"))
    assert result.action == "completed"
    artifact = client.get_model_artifact("tiny-sd", "1.0")
    assert isinstance(artifact, ModelArtifact) and artifact.id == result.model_artifact_id
    assert artifact.uri == MODEL_URI
    assert client.get_model_version("tiny-sd", "1.0").custom_properties["source_revision"] == "0123abcd"


def test_works_against_a_v1alpha3_only_registry(registry_server_factory, tmp_path: Path) -> None:
    server = registry_server_factory(api_versions=("v1alpha3",))
    manifest = write_model(tmp_path / "m")
    first = register(server, manifest)
    second = register(server, manifest)
    assert first.api_version == "v1alpha3" and second.action == "updated"
    assert second.model_version_id == first.model_version_id


def test_registry_down_then_up(registry_server, tmp_path: Path) -> None:
    manifest = write_model(tmp_path / "m")
    registry_server.stop()
    with pytest.raises(RegistryError) as caught:
        register(registry_server, manifest)
    assert registry_server.url in caught.value.one_line() and caught.value.fix
    registry_server.start()
    assert register(registry_server, manifest).action == "created"


def test_cli_writes_ids_and_keeps_token_out_of_output(registry_server_factory, tmp_path: Path) -> None:
    token = "registry-token-s3cr3t-42"
    server = registry_server_factory(token=token)
    manifest = write_model(tmp_path / "m")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MODEL_REGISTRY_TOKEN": token,
        "MODELPIPE_LOG_LEVEL": "DEBUG",
    }
    command = [
        sys.executable, "-m", "modelpipe", "register", "--registry-url", server.url,
        "--model-name", "tiny-sd",
        "--version-name", "1.0", "--model-uri", MODEL_URI, "--model-dir", str(manifest.parent),
        "--results-dir", str(tmp_path / "results"), "-v",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    version = official_client(server).get_model_version("tiny-sd", "1.0")
    assert (tmp_path / "results" / "MODEL_VERSION_ID").read_text() == version.id
    assert token not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
