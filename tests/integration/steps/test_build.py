"""modelpipe build against real buildah, skopeo and a docker-registry on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from modelpipe.cli import main
from modelpipe.errors import BuildError
from modelpipe.steps import build as build_step
from modelpipe.steps.build import BuildResult, build_runtime

from tests.fixtures.image_registry import ImageRegistry
from tests.support.tools import free_port, require_tool

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tool("buildah")
    require_tool("skopeo")


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A FROM-scratch context: base images cannot be pulled here, COPY needs no OCI runtime."""
    ctx = tmp_path / "context"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello from the runtime\n")
    (ctx / "build.log").write_text("ignored by .containerignore\n")
    (ctx / ".containerignore").write_text("*.log\n")
    (ctx / "Containerfile").write_text(
        "FROM scratch\nARG GREETING=hi\nLABEL greeting=$GREETING\nCOPY hello.txt /hello.txt\n"
    )
    return ctx


def _build(context: Path, registry: ImageRegistry, tmp_path: Path, **kwargs: object) -> BuildResult:
    options: dict[str, object] = {
        "image": f"{registry.host}/test/diffusers-runtime",
        "tls_verify": False,
        "storage_root": tmp_path / "buildah",
        **kwargs,
    }
    return build_runtime(context=context, **options)  # type: ignore[arg-type]


def _registry_digest(ref: str) -> str:
    raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        check=True,
    ).stdout
    return json.loads(raw)["Digest"]


def test_build_pushes_image_and_returns_registry_digest(
    context: Path, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    result = _build(context, image_registry, tmp_path, build_args={"GREETING": "yo"})

    assert not result.skipped
    assert result.image_url == f"{image_registry.host}/test/diffusers-runtime:{result.tag}"
    assert result.tag.startswith("ctx-")
    assert result.image_digest == _registry_digest(result.image_url)


def test_second_run_skips_build_and_returns_same_digest(
    context: Path,
    image_registry: ImageRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = _build(context, image_registry, tmp_path)

    def no_buildah(*args: object, **kwargs: object) -> None:
        raise AssertionError("buildah must not run when the tag exists")

    monkeypatch.setattr(build_step, "_run_logged", no_buildah)
    second = _build(context, image_registry, tmp_path)

    assert second.skipped
    assert (second.image_url, second.image_digest) == (
        first.image_url,
        first.image_digest,
    )


def test_changed_context_builds_new_tag_but_ignored_file_does_not(
    context: Path, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    first = _build(context, image_registry, tmp_path)
    (context / "build.log").write_text("changed, but ignored\n")
    unchanged = _build(context, image_registry, tmp_path)
    (context / "hello.txt").write_text("hello, changed\n")
    changed = _build(context, image_registry, tmp_path)

    assert unchanged.skipped and unchanged.image_url == first.image_url
    assert not changed.skipped
    assert changed.tag != first.tag
    assert changed.image_digest != first.image_digest
    assert _registry_digest(first.image_url) == first.image_digest  # the old tag is still there


def test_failed_build_raises_with_buildah_output(
    context: Path, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    (context / "Containerfile").write_text("FROM scratch\nCOPY missing-file.txt /x\n")

    with pytest.raises(BuildError, match=r"buildah build failed .*missing-file\.txt"):
        _build(context, image_registry, tmp_path)


def test_unreachable_registry_fails_before_building(context: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"cannot check whether 127\.0\.0\.1:\d+/t/rt:ctx-\w+ exists"):
        build_runtime(
            context=context,
            image=f"127.0.0.1:{free_port()}/t/rt",
            tls_verify=False,
            storage_root=tmp_path,
        )
    assert not (tmp_path / "storage").exists()


def test_cli_writes_image_url_and_digest_results(
    context: Path,
    image_registry: ImageRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {}}))
    results = tmp_path / "results"

    code = main(
        [
            "build",
            "--context-dir",
            str(context),
            "--image",
            f"{image_registry.host}/cli/rt",
            "--tls-verify",
            "false",
            "--authfile",
            str(authfile),
            "--storage-root",
            str(tmp_path / "buildah"),
            "--results-dir",
            str(results),
        ]
    )

    assert code == 0
    url = (results / "IMAGE_URL").read_text()
    assert url.startswith(f"{image_registry.host}/cli/rt:ctx-")
    assert (results / "IMAGE_DIGEST").read_text() == _registry_digest(url)
    assert f"IMAGE_URL: {url}" in capsys.readouterr().out


def test_credentials_from_authfile_are_used_and_never_shown(
    context: Path,
    image_registry_with_auth: ImageRegistry,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = image_registry_with_auth
    image = f"{registry.host}/private/rt"
    good = registry.write_authfile(tmp_path / "good.json")
    wrong = registry.write_authfile(tmp_path / "wrong.json", password="wrong-pass-4567")
    caplog.set_level("DEBUG")

    built = _build(context, registry, tmp_path, authfile=good, image=image)
    with pytest.raises(BuildError, match="buildah push failed") as refused:
        _build(context, registry, tmp_path, authfile=wrong, build_args={"GREETING": "changed"}, image=image)

    assert built.image_digest.startswith("sha256:")
    shown = str(refused.value) + caplog.text
    assert "unauthorized" in shown.lower()
    for secret in (
        "registry-s3cr3t-0123",
        "wrong-pass-4567",
        json.loads(wrong.read_text())["auths"][registry.host]["auth"],
    ):
        assert secret not in shown


def test_no_cache_rebuild_carries_the_new_build_arg_value(
    context: Path, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    _build(context, image_registry, tmp_path, build_args={"GREETING": "first"})
    second = _build(context, image_registry, tmp_path, build_args={"GREETING": "second"}, no_cache=True)

    raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{second.image_url}"],
        capture_output=True,
        check=True,
    ).stdout
    assert json.loads(raw)["Labels"]["greeting"] == "second"
