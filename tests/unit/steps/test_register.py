"""register: input checks, the properties written, conflict rules, and the CLI glue (step patched)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from model_registry.types import ModelArtifact, ModelVersion
from modelpipe import cli
from modelpipe.errors import ConfigError, VersionConflictError
from modelpipe.manifest import build_manifest, hash_files, write_manifest
from modelpipe.steps import register as step
from modelpipe.steps.register import RegisterResult

DIGEST = "sha256:" + "ab" * 32


def write_model(folder: Path, content: str = '{"_class_name": "StableDiffusionPipeline"}') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(content)
    manifest = build_manifest(
        source="hf://org/tiny-sd",
        revision="0123abcd",
        files=hash_files(folder, ["model_index.json"]),
    )
    return write_manifest(folder, manifest)


def wanted(manifest: Path, **overrides: Any) -> step._Wanted:
    arguments: dict[str, Any] = {
        "model_name": "tiny-sd",
        "version_name": "1.0",
        "model_uri": "s3://models/tiny-sd/0123abcd",
        "manifest": manifest,
        "runtime_image": None,
        "vllm_runtime_image": None,
        "storage_key": "models-connection",
        "description": None,
        "labels": None,
        "pipeline_run": None,
        "model_format_version": step.MODEL_FORMAT_VERSION,
        "model_kind": None,
    }
    arguments.update(overrides)
    return step._wanted_state(**arguments)


def test_properties_record_provenance_with_size_as_string_and_labels_as_empty_strings(
    tmp_path: Path,
) -> None:
    manifest = write_model(tmp_path / "m")
    state = wanted(
        manifest,
        runtime_image=f"quay.io/acme/runtime@{DIGEST}",
        pipeline_run="run-7",
        labels=("text-to-image", "demo"),
    )
    props = state.properties
    assert props["source"] == "hf://org/tiny-sd"
    assert props["source_revision"] == "0123abcd"
    assert props["size_bytes"] == str((tmp_path / "m" / "model_index.json").stat().st_size)
    assert props["runtime_image_digest"] == DIGEST
    assert props["pipeline_run"] == "run-7"
    assert props["text-to-image"] == "" and props["demo"] == ""
    assert len(str(props["manifest_sha256"])) == 64
    assert state.storage_path == "tiny-sd/0123abcd"


def test_vllm_image_is_not_recorded_on_a_text_to_image_version(tmp_path: Path) -> None:
    state = wanted(
        write_model(tmp_path / "m"),
        runtime_image=f"quay.io/acme/runtime@{DIGEST}",
        vllm_runtime_image="quay.io/modh/vllm@sha256:" + "cd" * 32,
    )
    assert state.properties["runtime_image"] == f"quay.io/acme/runtime@{DIGEST}"
    assert state.properties["serving_runtime"] == "diffusers-runtime"
    assert state.cleared == frozenset()


def test_runtime_image_without_digest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pinned by digest"):
        wanted(write_model(tmp_path / "m"), runtime_image="quay.io/acme/runtime:latest")


@pytest.mark.parametrize("uri", ["models/tiny-sd", "s3://models", "https://host/models/x", "s3:///x"])
def test_model_uri_must_be_an_s3_prefix(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ConfigError, match="--model-uri"):
        wanted(write_model(tmp_path / "m"), model_uri=uri)


def test_label_that_would_overwrite_a_property_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--labels 'source'"):
        wanted(write_model(tmp_path / "m"), labels=("source",))


def test_version_name_with_slash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--version-name"):
        wanted(write_model(tmp_path / "m"), version_name="a/b")


def existing(state: step._Wanted, *, uri: str, **props: Any) -> tuple[ModelVersion, ModelArtifact]:
    version = ModelVersion(
        id="5",
        name="1.0",
        registered_model_id="4",
        custom_properties={**state.properties, **props},
    )
    return version, ModelArtifact(id="9", name="tiny-sd", uri=uri)


def test_same_files_with_rewritten_manifest_timestamp_is_not_a_conflict(
    tmp_path: Path,
) -> None:
    state = wanted(write_model(tmp_path / "m"))
    version, artifact = existing(state, uri=state.model_uri, manifest_sha256="f" * 64)
    step._refuse_conflict(version, artifact, state)


def test_other_artifact_uri_is_a_conflict_naming_both(tmp_path: Path) -> None:
    state = wanted(write_model(tmp_path / "m"))
    version, artifact = existing(state, uri="s3://models/tiny-sd/old")
    with pytest.raises(VersionConflictError) as caught:
        step._refuse_conflict(version, artifact, state)
    assert "s3://models/tiny-sd/old" in str(caught.value) and state.model_uri in str(caught.value)


def test_other_model_content_is_a_conflict_naming_both_manifests(
    tmp_path: Path,
) -> None:
    state = wanted(write_model(tmp_path / "m"))
    other = wanted(write_model(tmp_path / "other", content='{"changed": true}'))
    version, artifact = existing(other, uri=state.model_uri)
    with pytest.raises(VersionConflictError) as caught:
        step._refuse_conflict(version, artifact, state)
    assert other.manifest_sha256 in str(caught.value) and state.manifest_sha256 in str(caught.value)


def test_version_without_artifact_from_same_content_can_be_completed(
    tmp_path: Path,
) -> None:
    state = wanted(write_model(tmp_path / "m"))
    version, _ = existing(state, uri=state.model_uri)
    step._refuse_conflict(version, None, state)


@pytest.fixture
def only_register_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the CLI with just this subcommand: other subcommands import heavy libraries."""
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("register",))


def test_cli_passes_flags_and_writes_the_three_id_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, only_register_subcommand: None
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_register_model(**kwargs: Any) -> RegisterResult:
        calls.append(kwargs)
        return RegisterResult("1", "2", "3", action="created", api_version="v1")

    monkeypatch.setattr("modelpipe.cli.register.register_model", fake_register_model)
    monkeypatch.setenv("MODEL_REGISTRY_URL", "http://env-registry:8080")
    monkeypatch.setenv("MODEL_REGISTRY_TOKEN", "tok-from-env-123")
    monkeypatch.setenv("VLLM_RUNTIME_IMAGE", f"quay.io/modh/vllm@{DIGEST}")
    code = cli.main(
        [
            "register",
            "--model-name=tiny-sd",
            "--version-name=1.0",
            "--model-uri=s3://models/tiny-sd",
            f"--model-dir={tmp_path}",
            "--data-connection=models",
            "--pipeline-run=run-1",
            f"--results-dir={tmp_path / 'results'}",
            "--labels",
            "a",
            "b c",
        ]
    )
    assert code == 0
    (kwargs,) = calls
    assert kwargs["labels"] == ("a", "b c")
    assert kwargs["manifest"] == tmp_path / "manifest.json"
    assert kwargs["storage_key"] == "aws-connection-models"
    assert kwargs["registry"].url == "http://env-registry:8080"
    assert kwargs["registry"].token.get_secret_value() == "tok-from-env-123"
    assert kwargs["pipeline_run"] == "run-1"
    assert kwargs["vllm_runtime_image"] == f"quay.io/modh/vllm@{DIGEST}"
    results = {p.name: p.read_text() for p in (tmp_path / "results").iterdir()}
    assert results == {
        "REGISTERED_MODEL_ID": "1",
        "MODEL_VERSION_ID": "2",
        "MODEL_ARTIFACT_ID": "3",
    }


def test_cli_leaves_labels_and_kind_to_the_manifest_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, only_register_subcommand: None
) -> None:
    seen: list[tuple[Any, Any]] = []

    def fake_register_model(**kwargs: Any) -> RegisterResult:
        seen.append((kwargs["labels"], kwargs["model_kind"]))
        return RegisterResult("1", "2", "3", action="updated", api_version="v1")

    monkeypatch.setattr("modelpipe.cli.register.register_model", fake_register_model)
    base = [
        "register",
        "--model-name=m",
        "--version-name=v",
        "--model-uri=s3://b/m",
        "--model-dir=x",
        "--registry-url=http://r:1",
    ]
    assert cli.main(base) == 0
    assert cli.main([*base, "--model-kind=text-generation"]) == 0
    # What a Task passes for an empty array param, or an array of one empty string.
    assert cli.main([*base, "--labels"]) == 0
    assert cli.main([*base, "--labels", "", "--model-kind", ""]) == 0
    assert seen == [(None, None), (None, "text-generation"), (None, None), (None, None)]


def test_cli_unknown_model_kind_exits_1_naming_the_kinds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], only_register_subcommand: None
) -> None:
    monkeypatch.setattr("modelpipe.cli.register.register_model", lambda **kwargs: None)
    args = ["register", "--model-name=m", "--version-name=v", "--model-uri=s3://b/m", "--model-dir=x"]
    assert cli.main([*args, "--model-kind=llm", "--registry-url=http://r:1"]) == 1
    err = capsys.readouterr().err
    assert "--model-kind 'llm' is not a model kind" in err
    assert "text-to-image, text-generation" in err


def test_labels_default_to_the_manifest_kind(tmp_path: Path) -> None:
    state = wanted(write_model(tmp_path / "m"))
    assert state.properties["text-to-image"] == ""
    assert state.properties["model_kind"] == "text-to-image"
    assert state.model_format_name == "diffusers"


def test_kind_other_than_the_manifests_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="records a text-to-image model"):
        wanted(write_model(tmp_path / "m"), model_kind="text-generation")


def test_cli_conflict_exits_1_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    only_register_subcommand: None,
) -> None:
    def conflicting(**kwargs: Any) -> RegisterResult:
        raise VersionConflictError(
            "m:v is registered with s3://b/old; this run has s3://b/new", fix="new name"
        )

    monkeypatch.setattr("modelpipe.cli.register.register_model", conflicting)
    base = [
        "register",
        "--model-name=m",
        "--version-name=v",
        "--model-uri=s3://b/new",
        "--model-dir=x",
    ]
    assert cli.main([*base, "--registry-url=http://r:1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "modelpipe register: error: m:v is registered with s3://b/old; "
        "this run has s3://b/new (fix: new name)"
    ]
