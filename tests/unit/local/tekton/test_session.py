"""Local session decisions that need no services: build or skip, model names, DNS labels, leftovers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from modelpipe.build_context import base_images
from modelpipe.errors import InvalidSourceError, LocalRunError
from modelpipe.local.services import check_no_leftover, s3_credentials
from modelpipe.local.session import SessionSettings, _model_source, build_decision
from modelpipe.names import dns_label

from tests.unit.local.tekton.helpers import sh, task


def _repo(tmp_path: Path, *, containerfile: str | None, volumes: bool) -> Path:
    repo = tmp_path / "repo"
    (repo / "runtime").mkdir(parents=True)
    (repo / "tasks").mkdir()
    if containerfile is not None:
        (repo / "runtime" / "Containerfile").write_text(containerfile)
    extra = {"volumes": [{"name": "storage", "emptyDir": {}}]} if volumes else {}
    doc = task("build-runtime", steps=[sh("build", "true")], **extra)
    (repo / "tasks" / "build-runtime.yaml").write_text(yaml.safe_dump(doc))
    return repo


def _fake_buildah(tmp_path: Path, inspect_code: int) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "buildah"
    fake.write_text(f"#!/bin/sh\nexit {inspect_code}\n")
    fake.chmod(0o755)
    return str(bin_dir)


def test_build_is_skipped_without_buildah(tmp_path):
    repo = _repo(tmp_path, containerfile="FROM base:1\n", volumes=False)
    assert build_decision(repo, repo / "tasks", {"PATH": str(tmp_path / "empty")}) == (
        False,
        "buildah is not installed",
    )


def test_build_is_skipped_when_the_containerfile_is_missing(tmp_path):
    repo = _repo(tmp_path, containerfile=None, volumes=False)
    path = _fake_buildah(tmp_path, 0)
    assert build_decision(repo, repo / "tasks", {"PATH": path}) == (
        False,
        "runtime/Containerfile not found",
    )


def test_build_is_skipped_when_the_base_image_cannot_be_pulled(tmp_path):
    repo = _repo(tmp_path, containerfile="FROM quay.io/x/base:1.0 AS b\n", volumes=False)
    can, why = build_decision(repo, repo / "tasks", {"PATH": _fake_buildah(tmp_path, 1)})
    assert not can
    assert "base image quay.io/x/base:1.0 is not in local container storage" in why


def test_build_is_skipped_when_the_task_needs_features_the_runner_rejects(tmp_path):
    repo = _repo(tmp_path, containerfile="FROM base:1\n", volumes=True)
    can, why = build_decision(repo, repo / "tasks", {"PATH": _fake_buildah(tmp_path, 0)})
    assert not can
    assert "volumes" in why


def test_build_is_skipped_without_a_push_target(tmp_path):
    repo = _repo(tmp_path, containerfile="FROM base:1\n", volumes=False)
    path = _fake_buildah(tmp_path, 0)
    assert build_decision(repo, repo / "tasks", {"PATH": path}, None) == (
        False,
        "no --image to push the runtime image to",
    )


def test_build_runs_when_buildah_base_image_task_and_repo_are_fine(tmp_path):
    repo = _repo(tmp_path, containerfile="FROM base:1\n", volumes=False)
    path = _fake_buildah(tmp_path, 0)
    assert build_decision(repo, repo / "tasks", {"PATH": path}, "127.0.0.1:5000/rt")[0]


def test_base_images_fill_arg_defaults_and_skip_stages_and_scratch():
    containerfile = (
        "ARG BASE=docker.io/library/python:3.11-slim\n"
        "FROM ${BASE} AS build\nFROM build AS final\nFROM scratch\n"
        "FROM --platform=linux/amd64 quay.io/x/y:2\n"
    )
    assert base_images(containerfile) == [
        "docker.io/library/python:3.11-slim",
        "quay.io/x/y:2",
    ]


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("tiny-sd", "tiny-sd"),
        ("SD_Turbo.v2", "sd-turbo-v2"),
        ("1b-model", "m-1b-model"),
    ],
)
def test_dns_label(name, label):
    assert dns_label(name) == label


def _settings(tmp_path: Path) -> SessionSettings:
    return SessionSettings(repo_dir=tmp_path, state_dir=tmp_path / "state", environ={}, venv_bin=tmp_path)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("hf://segmind/tiny-sd@abc123", "tiny-sd"),
        ("hf://stabilityai/sd-turbo", "sd-turbo"),
        ("file:///models/my-model", "my-model"),
    ],
)
def test_model_name_comes_from_the_source(tmp_path, source, name):
    assert _model_source(_settings(tmp_path), source) == (source, name)


def test_unknown_source_scheme_is_refused(tmp_path):
    with pytest.raises(InvalidSourceError, match="no supported scheme"):
        _model_source(_settings(tmp_path), "s3://bucket/model")


def test_services_left_by_keep_running_are_named_with_their_pids(tmp_path):
    (tmp_path / "services.json").write_text(json.dumps({"pids": [os.getpid()]}))
    with pytest.raises(LocalRunError) as err:
        check_no_leftover(tmp_path)
    assert f"(fix: stop them: kill {os.getpid()}; modelpipe deploy --target local --stop" in (
        err.value.one_line()
    )


def test_stale_services_file_is_removed(tmp_path):
    (tmp_path / "services.json").write_text(json.dumps({"pids": [2**22 + 12345]}))
    check_no_leftover(tmp_path)
    assert not (tmp_path / "services.json").exists()


def test_sigterm_becomes_an_interrupt_so_services_get_stopped():
    import signal

    from modelpipe.local.services import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("text", ["{not json", '{"pids": "1 2"}', "[]"])
def test_damaged_services_file_is_named_with_the_fix(tmp_path, text):
    (tmp_path / "services.json").write_text(text)
    with pytest.raises(LocalRunError) as err:
        check_no_leftover(tmp_path)
    assert str(tmp_path / "services.json") in err.value.one_line()
    assert "delete" in err.value.one_line()


def test_s3_credentials_are_kept_private_and_reused(tmp_path):
    first = s3_credentials(tmp_path)
    assert (tmp_path / "s3-credentials.json").stat().st_mode & 0o777 == 0o600
    assert s3_credentials(tmp_path) == first


def test_damaged_s3_credentials_file_is_named_without_a_traceback(tmp_path):
    (tmp_path / "s3-credentials.json").write_text('{"access_key_id": "x"}')
    with pytest.raises(LocalRunError, match=r"s3-credentials\.json is not a state file"):
        s3_credentials(tmp_path)
