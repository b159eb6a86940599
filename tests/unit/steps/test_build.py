"""Build context hashing, image name checks, auth file handling and the build CLI glue."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from modelpipe.build_context import context_tag, is_ignored, read_ignore_patterns
from modelpipe.cli import main
from modelpipe.errors import BuildError, ConfigError
from modelpipe.redaction import redact
from modelpipe.steps import build as build_step
from modelpipe.steps.build import BuildResult, load_authfile, validate_image_repo


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / "Containerfile").write_text("FROM scratch\nCOPY src /src\n")
    return root


def _tag(ctx: Path, **args: str) -> str:
    return context_tag(ctx, ctx / "Containerfile", args)


def test_same_tree_gives_same_tag_in_another_folder(ctx: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    (copy / "src").mkdir(parents=True)
    (copy / "src" / "app.py").write_text("print('hi')\n")
    (copy / "Containerfile").write_text("FROM scratch\nCOPY src /src\n")
    assert _tag(ctx) == _tag(copy)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: (c / "src" / "app.py").write_text("print('bye')\n"),
        lambda c: os.chmod(c / "src" / "app.py", 0o755),
        lambda c: (c / "src" / "app.py").rename(c / "src" / "main.py"),
        lambda c: (c / "new.txt").write_text(""),
        lambda c: (c / "Containerfile").write_text("FROM scratch\nCOPY src /app\n"),
    ],
    ids=["content", "mode", "rename", "new-file", "containerfile"],
)
def test_any_change_in_the_recipe_changes_the_tag(ctx: Path, change) -> None:  # type: ignore[no-untyped-def]
    before = _tag(ctx)
    change(ctx)
    assert _tag(ctx) != before


def test_build_args_change_the_tag_regardless_of_order(ctx: Path) -> None:
    assert _tag(ctx, A="1", B="2") == context_tag(ctx, ctx / "Containerfile", {"B": "2", "A": "1"})
    assert _tag(ctx, A="1") != _tag(ctx, A="2")
    assert _tag(ctx) != _tag(ctx, A="")


def test_ignored_files_do_not_change_the_tag(ctx: Path) -> None:
    (ctx / ".dockerignore").write_text("# comment\n**/__pycache__\n*.log\n")
    before = _tag(ctx)
    (ctx / "src" / "__pycache__").mkdir()
    (ctx / "src" / "__pycache__" / "app.pyc").write_bytes(b"\0")
    (ctx / "debug.log").write_text("x")
    assert _tag(ctx) == before


def test_containerignore_wins_over_dockerignore(ctx: Path) -> None:
    (ctx / ".containerignore").write_text("*.txt\n")
    (ctx / ".dockerignore").write_text("*.md\n")
    patterns = read_ignore_patterns(ctx)
    assert is_ignored("notes.txt", patterns)
    assert not is_ignored("README.md", patterns)


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        ("*.log", "a.log", True),
        (
            "*.log",
            "sub/a.log",
            False,
        ),  # unlike .gitignore, patterns are anchored at the context root
        ("**/*.log", "sub/deep/a.log", True),
        (
            "/build",
            "build/x/y.bin",
            True,
        ),  # a matched folder excludes everything below it
        ("docs\n!docs/keep.md", "docs/keep.md", False),
        ("docs\n!docs/keep.md", "docs/other.md", True),
        ("file?.txt", "file1.txt", True),
        ("file[!0-9].txt", "file1.txt", False),
        (".venv\n", ".venv/bin/python", True),
    ],
)
def test_ignore_patterns_follow_dockerignore_rules(
    tmp_path: Path, patterns: str, path: str, ignored: bool
) -> None:
    (tmp_path / ".dockerignore").write_text(patterns)
    assert is_ignored(path, read_ignore_patterns(tmp_path)) is ignored


def test_negated_pattern_re_includes_file_in_ignored_folder_for_the_tag(
    ctx: Path,
) -> None:
    (ctx / "docs").mkdir()
    (ctx / "docs" / "keep.md").write_text("v1")
    (ctx / ".dockerignore").write_text("docs\n!docs/keep.md\n")
    before = _tag(ctx)
    (ctx / "docs" / "keep.md").write_text("v2")
    assert _tag(ctx) != before


def test_symlink_hashes_its_target_not_followed(ctx: Path) -> None:
    (ctx / "link").symlink_to("src/app.py")
    before = _tag(ctx)
    (ctx / "link").unlink()
    (ctx / "link").symlink_to("src")
    assert _tag(ctx) != before


@pytest.mark.parametrize(
    "image",
    ["quay.io/org/diffusers-runtime", "127.0.0.1:5000/test/rt", "localhost/rt", "rt"],
)
def test_valid_image_repositories_are_accepted(image: str) -> None:
    assert validate_image_repo(image) == image


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("quay.io/org/rt:latest", "without tag or digest"),
        ("quay.io/org/rt@sha256:" + "0" * 64, "without tag or digest"),
        ("docker://quay.io/org/rt", "not a valid image repository"),
        ("quay.io/Org/RT", "not a valid image repository"),
    ],
)
def test_invalid_image_repositories_are_refused(image: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_image_repo(image)


def test_authfile_credentials_are_redacted(tmp_path: Path) -> None:
    auth = base64.b64encode(b"robot+builder:s3cr3t-registry-password").decode()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"quay.io": {"auth": auth, "identitytoken": "tok-abcdef123"}}}))
    load_authfile(path)
    text = redact(f"push failed with {auth} s3cr3t-registry-password tok-abcdef123")
    assert "s3cr3t" not in text and auth not in text and "tok-abcdef123" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("{not json", "not a readable JSON")],
)
def test_bad_authfile_is_a_config_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "auth.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_authfile(path)


def _fake_result() -> BuildResult:
    return BuildResult("reg/x/rt:ctx-1", "sha256:" + "a" * 64, "ctx-1", skipped=False, seconds=1.0)


def test_cli_passes_flags_and_env_authfile_to_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(
        "modelpipe.cli.build.build_runtime",
        lambda **kw: calls.append(kw) or _fake_result(),
    )
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))

    code = main(
        [
            "build",
            "--context-dir",
            "ctx",
            "--image",
            "reg/x/rt",
            "--build-args",
            "A=1=2",
            "B=",
            "--tls-verify",
            "false",
            "--results-dir",
            str(tmp_path / "r"),
        ]
    )

    assert code == 0
    assert calls == [
        {
            "context": Path("ctx"),
            "image": "reg/x/rt",
            "containerfile": None,
            "build_args": {"A": "1=2", "B": ""},
            "tls_verify": False,
            "storage_driver": "vfs",
            "authfile": tmp_path / "docker" / "config.json",
            "storage_root": None,
            "no_cache": False,
        }
    ]
    assert (tmp_path / "r" / "IMAGE_DIGEST").read_text() == "sha256:" + "a" * 64
    assert (tmp_path / "r" / "IMAGE_REF").read_text() == "reg/x/rt@sha256:" + "a" * 64
    assert "built: true" in capsys.readouterr().out


def test_cli_refuses_duplicate_build_arg(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("modelpipe.cli.build.build_runtime", lambda **kw: _fake_result())
    code = main(
        [
            "build",
            "--context-dir",
            "c",
            "--image",
            "r/x",
            "--build-args",
            "A=1",
            "A=2",
        ]
    )
    assert code == 1
    assert "--build-args A given twice" in capsys.readouterr().err


def test_cli_without_build_reports_the_prebuilt_image_for_later_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelpipe.cli.build.build_runtime", _must_not_build)
    digest = "sha256:" + "b" * 64
    argv = ["build", "--build", "false", "--prebuilt-image", f"quay.io/o/rt@{digest}"]
    code = main([*argv, "--results-dir", str(tmp_path)])
    assert code == 0
    assert (tmp_path / "IMAGE_REF").read_text() == f"quay.io/o/rt@{digest}"
    assert (tmp_path / "IMAGE_URL").read_text() == "quay.io/o/rt"
    assert (tmp_path / "IMAGE_DIGEST").read_text() == digest


def test_cli_without_build_or_image_reports_empty_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelpipe.cli.build.build_runtime", _must_not_build)
    assert main(["build", "--build", "false", "--prebuilt-image", "", "--results-dir", str(tmp_path)]) == 0
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "IMAGE_REF": "",
        "IMAGE_URL": "",
        "IMAGE_DIGEST": "",
    }


def test_prebuilt_image_must_be_pinned_by_digest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--build", "false", "--prebuilt-image", "quay.io/o/rt:1.0"]) == 1
    assert "not pinned by digest" in capsys.readouterr().err


def test_building_needs_context_and_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--image", "r/x"]) == 1
    assert "--context-dir required to build" in capsys.readouterr().err


def _must_not_build(**kwargs: object) -> BuildResult:
    raise AssertionError("build_runtime must not run with --build false")


@pytest.mark.parametrize("argv", [["--tls-verify", "yes"], ["--build-args", "NOEQUALS"]])
def test_cli_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["build", "--context-dir", "c", "--image", "r/x", *argv])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("stderr", "outcome"),
    [
        ("reading manifest ctx-1 in r/not-found/x: manifest unknown: manifest unknown", None),
        ("reading manifest ctx-1: unauthorized: authentication required", None),
        ("pinging container registry 127.0.0.1:40404: dial tcp: connect: connection refused", "error"),
    ],
)
def test_skopeo_answers_are_classified_by_its_words_not_the_reference(
    stderr: str, outcome: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    ref = "127.0.0.1:40404/not-found/x:ctx-404401"
    failed = subprocess.CompletedProcess(
        [], 1, b"", f'Error parsing image name "docker://{ref}": {stderr}'.encode()
    )
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    monkeypatch.setattr(build_step.shutil, "which", lambda name: f"/usr/bin/{name}")
    if outcome is None:
        assert build_step.inspect_digest(ref, tls_verify=False, authfile=None) is None
    else:
        with pytest.raises(BuildError, match="connection refused"):
            build_step.inspect_digest(ref, tls_verify=False, authfile=None)
