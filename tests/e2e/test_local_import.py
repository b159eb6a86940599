"""`./run-model-import.sh --local` end to end: registry via the official client, report in S3, re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from model_registry import ModelRegistry
from modelpipe.local.s3 import S3Credentials, SeaweedS3

from tests.support.tools import REPO_ROOT, require_tool

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:User access token is missing"),  # the local registry has no auth
]

RUN_TIMEOUT_SECONDS = 1500
MODEL_NAME = "tiny-sd"
VERSION_NAME = "v1"


@dataclass(frozen=True)
class ScriptRun:
    """One `run-model-import.sh --local` process: exit code, streams, parsed summary, wall time."""

    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def summary(self) -> dict[str, str]:
        pairs = (line.partition(": ") for line in self.stdout.splitlines())
        return {key: value for key, sep, value in pairs if sep}

    def task_result(self, task: str, name: str) -> str:
        return (Path(self.summary["logs"]) / task / "results" / name).read_text(encoding="utf-8")


def run_local_import(state_dir: Path, *extra: str, script: str = "run-model-import.sh") -> ScriptRun:
    env = {**os.environ, "MODELPIPE_LOCAL_DIR": str(state_dir)}
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_S3_ENDPOINT",
        "MODEL_REGISTRY_URL",
    ):
        env.pop(name, None)  # a developer's real settings must not leak into the run
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(REPO_ROOT / script), "--local", *extra],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # the session then stops S3, registry, runtime
        stdout, stderr = proc.communicate(timeout=120)
        pytest.fail(f"local import ran over {RUN_TIMEOUT_SECONDS}s:\n{stderr[-4000:]}")
    return ScriptRun(proc.returncode, stdout, stderr, time.monotonic() - started)


@dataclass(frozen=True)
class Imports:
    state_dir: Path
    first: ScriptRun
    second: ScriptRun


@pytest.fixture(scope="module")
def imports(tmp_path_factory: pytest.TempPathFactory) -> Imports:
    """Two imports of the tiny demo model into one fresh state folder (each run takes minutes)."""
    require_tool("weed")
    state = tmp_path_factory.mktemp("local-state")
    first = run_local_import(state)
    assert first.code == 0, first.stderr[-4000:]
    second = run_local_import(state)
    assert second.code == 0, second.stderr[-4000:]
    print(f"local import wall time: first {first.seconds:.0f}s, second {second.seconds:.0f}s")
    return Imports(state, first, second)


@pytest.fixture
def registry(imports: Imports, registry_server_factory) -> ModelRegistry:
    """The official client on a registry server reading the state's registry.db."""
    server = registry_server_factory(db=imports.state_dir / "registry.db")
    return ModelRegistry("http://127.0.0.1", server.port, author="e2e", is_secure=False)


@pytest.fixture
def s3(imports: Imports) -> Iterator[SeaweedS3]:
    """SeaweedFS restarted on the state's data folder with the session's credentials."""
    keys = json.loads((imports.state_dir / "s3-credentials.json").read_text(encoding="utf-8"))
    server = SeaweedS3(
        imports.state_dir / "s3",
        S3Credentials(keys["access_key_id"], keys["secret_access_key"]),
        bucket="modelpipe",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_import_registers_the_version_with_its_artifact_uri(imports, registry):
    version = registry.get_model_version(MODEL_NAME, VERSION_NAME)
    artifact = registry.get_model_artifact(MODEL_NAME, VERSION_NAME)
    assert version is not None and artifact is not None
    assert artifact.uri == imports.first.summary["model_uri"]
    assert artifact.uri.startswith(f"s3://modelpipe/models/{MODEL_NAME}/{VERSION_NAME}")
    assert str(version.id) == imports.first.summary["model_version_id"]


def test_import_publishes_clip_and_latency_to_the_version(imports, registry):
    props = registry.get_model_version(MODEL_NAME, VERSION_NAME).custom_properties
    assert props["benchmark_clip_score"] == pytest.approx(
        float(imports.second.summary["clip_score"]), rel=1e-3
    )
    assert props["benchmark_p50_seconds"] > 0
    assert props["benchmark_p95_seconds"] >= props["benchmark_p50_seconds"]
    # The dashboard-facing string copy is rounded for display; it must still say the same number.
    assert float(props["benchmark_p95_seconds_text"]) == pytest.approx(
        props["benchmark_p95_seconds"], rel=1e-2
    )
    assert props["benchmark_report_uri"] == imports.second.summary["report_uri"]


def test_report_is_in_s3_and_copied_locally(imports, s3):
    for run in (imports.first, imports.second):
        bucket, _, key = run.summary["report_uri"].removeprefix("s3://").partition("/")
        head = s3.client().head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] > 0
        assert "<html" in Path(run.summary["report_path"]).read_text(encoding="utf-8").lower()


def test_second_run_uploads_zero_bytes_and_updates_the_same_version(imports, registry):
    assert imports.second.task_result("upload-model", "BYTES_SENT") == "0"
    assert int(imports.second.task_result("upload-model", "BYTES_SKIPPED")) > 0
    assert int(imports.first.task_result("upload-model", "BYTES_SENT")) > 0
    assert imports.second.summary["model_version_id"] == imports.first.summary["model_version_id"]
    versions = list(registry.get_model_versions(MODEL_NAME))
    assert [v.name for v in versions] == [VERSION_NAME]


def test_summary_names_everything_and_services_stop(imports):
    summary = imports.first.summary
    for key in ("registered_model_id", "model_version_id", "model_uri", "endpoint", "clip_score",
                "p50_seconds", "p95_seconds", "images_per_second", "report_uri", "report_path"):  # fmt: skip
        assert summary.get(key, "-") != "-", key
    assert summary["build"].startswith("skipped (")
    assert summary["services"].startswith("stopped")
    assert not (imports.state_dir / "runtime" / "runtime.json").exists()


def test_runs_print_no_traceback_and_no_secret(imports):
    secret = json.loads((imports.state_dir / "s3-credentials.json").read_text())["secret_access_key"]
    for run in (imports.first, imports.second):
        assert "Traceback" not in run.stderr
        assert secret not in run.stderr + run.stdout
        logs = Path(run.summary["logs"])
        assert all(secret not in log.read_text(errors="replace") for log in logs.rglob("*.log"))


def test_wrong_s3_credentials_stop_the_run_naming_the_task(imports, tmp_path):
    secrets = tmp_path / "wrong.env"
    secrets.write_text("AWS_SECRET_ACCESS_KEY=definitely-not-the-key\n", encoding="utf-8")
    failed = run_local_import(imports.state_dir, "--secrets-file", str(secrets))
    assert failed.code == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert "modelpipe local: error:" in last
    assert "task upload-model failed at step upload" in last
    assert "log: " in last
    assert "Traceback" not in failed.stderr
    assert "definitely-not-the-key" not in failed.stderr
    assert "[register-model/" not in failed.stderr  # dependents never started


def test_local_testing_retests_the_latest_version(imports, registry):
    retest = run_local_import(imports.state_dir, script="run-model-testing.sh")
    assert retest.code == 0, retest.stderr[-4000:]
    assert "Traceback" not in retest.stderr
    assert retest.summary["model_version_id"] == imports.first.summary["model_version_id"]
    assert retest.summary["model_uri"] == imports.first.summary["model_uri"]
    assert retest.summary["report_uri"] not in (
        imports.first.summary["report_uri"],
        imports.second.summary["report_uri"],
    )
    props = registry.get_model_version(MODEL_NAME, VERSION_NAME).custom_properties
    assert props["benchmark_report_uri"] == retest.summary["report_uri"]
