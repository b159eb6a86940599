"""`modelpipe register` under concurrency and against a registry that never answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from modelpipe.config import RegistrySettings
from modelpipe.errors import RegistryError, VersionConflictError
from modelpipe.manifest import build_manifest, hash_files, write_manifest
from modelpipe.registry_client import request_budget
from modelpipe.steps.register import register_model

from tests.fixtures.registry import RegistryServer
from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration

RUNS = 6
MODEL_URI = "s3://models/tiny-sd/0123abcd"
IDS = ("REGISTERED_MODEL_ID", "MODEL_VERSION_ID", "MODEL_ARTIFACT_ID")


def _model(folder: Path, content: str = '{"_class_name": "StableDiffusionPipeline"}') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(content)
    write_manifest(
        folder,
        build_manifest(
            source="hf://org/tiny-sd",
            revision="0123abcd",
            files=hash_files(folder, ["model_index.json"]),
        ),
    )
    return folder


def _register(
    url: str,
    model_dir: Path,
    results: Path,
    *,
    model_uri: str = MODEL_URI,
    timeout: str = "",
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_REGISTRY_")}
    env["MODEL_REGISTRY_TIMEOUT"] = timeout
    command = [
        sys.executable, "-m", "modelpipe", "register", "--registry-url", url,
        "--model-name", "tiny-sd", "--version-name", "1.0", "--model-uri", model_uri,
        "--model-dir", str(model_dir), "--results-dir", str(results),
    ]  # fmt: skip
    return subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )


def test_six_concurrent_identical_registers_all_succeed_with_the_same_ids(
    registry_server: RegistryServer, tmp_path: Path
) -> None:
    model_dir = _model(tmp_path / "model")
    with ThreadPoolExecutor(RUNS) as pool:
        runs = list(
            pool.map(
                lambda i: _register(registry_server.url, model_dir, tmp_path / f"results-{i}"),
                range(RUNS),
            )
        )
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    ids = {tuple((tmp_path / f"results-{i}" / name).read_text() for name in IDS) for i in range(RUNS)}
    assert len(ids) == 1, ids


def test_concurrent_register_of_conflicting_content_still_fails(
    registry_server: RegistryServer, tmp_path: Path
) -> None:
    # In-process threads: the same race as separate runs, without two interpreter start-ups.
    settings = RegistrySettings(url=registry_server.url, token=None, author="tests")
    manifests = [
        _model(tmp_path / "a") / "manifest.json",
        _model(tmp_path / "b", '{"_class_name": "StableDiffusionXLPipeline"}') / "manifest.json",
    ]

    def attempt(manifest: Path) -> BaseException | None:
        try:
            register_model(
                registry=settings,
                model_name="tiny-sd",
                version_name="1.0",
                model_uri=MODEL_URI,
                manifest=manifest,
            )
        except RegistryError as err:
            return err
        return None

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(attempt, manifests))
    failures = [outcome for outcome in outcomes if outcome is not None]
    assert len(failures) == 1, outcomes
    assert isinstance(failures[0], VersionConflictError), repr(failures[0])


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """A TCP port that accepts connections (kernel backlog) and never sends a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_silent_registry_fails_within_the_timeout_budget_naming_the_endpoint(
    silent_registry: str, tmp_path: Path
) -> None:
    timeout = 1.0
    started = time.monotonic()
    run = _register(
        silent_registry,
        _model(tmp_path / "m"),
        tmp_path / "results",
        timeout=str(timeout),
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 1, run.stderr
    # Interpreter start-up and imports take a few seconds on a loaded machine; the waiting is the budget.
    assert elapsed < request_budget(timeout) + 20, elapsed
    message = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ""
    assert silent_registry in run.stderr and "did not answer" in run.stderr, run.stderr
    assert "MODEL_REGISTRY_TIMEOUT" in run.stderr and message, run.stderr
    assert "Traceback" not in run.stderr
