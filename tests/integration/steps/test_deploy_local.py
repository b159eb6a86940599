"""modelpipe deploy --target local: the real runtime as a detached process loading the tiny model from S3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from modelpipe import processes
from modelpipe.config import RegistrySettings, S3Settings
from modelpipe.errors import ConfigError, DeployError
from modelpipe.registry_client import connect_registry
from modelpipe.steps.deploy import LocalOptions, deploy_model
from modelpipe.targets import local_process
from pydantic import SecretStr

from tests.fixtures.registry import RegistryServer
from tests.fixtures.s3 import S3Endpoint
from tests.support.tools import REPO_ROOT, free_port

pytestmark = pytest.mark.integration

PREFIX = "tiny-sd/v1"


def _settings(s3: S3Endpoint) -> S3Settings:
    return S3Settings.from_env(s3.env)


@pytest.fixture
def model_uri(s3_server: S3Endpoint, tiny_sd_dir: Path) -> str:
    client = s3_server.client()
    for path in sorted(tiny_sd_dir.rglob("*")):
        if path.is_file():
            client.upload_file(
                str(path), s3_server.bucket, f"{PREFIX}/{path.relative_to(tiny_sd_dir).as_posix()}"
            )
    return f"s3://{s3_server.bucket}/{PREFIX}"


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "runtime-state"
    try:
        yield state
    finally:
        local_process.stop_local_runtime(state)


def _ready(url: str, name: str) -> int:
    with urllib.request.urlopen(f"{url}/v2/models/{name}/ready", timeout=10) as response:
        return int(response.status)


@pytest.mark.slow
def test_cli_starts_runtime_that_outlives_the_command_records_it_and_stop_ends_it(
    s3_server: S3Endpoint, registry_server: RegistryServer, model_uri: str, state_dir: Path, tmp_path: Path
) -> None:
    registry = connect_registry(RegistrySettings(registry_server.url, None, "tests"))
    model = registry.register_model(
        "tiny-sd", model_uri, model_format_name="diffusers", model_format_version="1", version="v1"
    )
    version = registry.get_model_version("tiny-sd", "v1")
    port = free_port()
    env = {**os.environ, **s3_server.env, **registry_server.env}
    command = [sys.executable, "-m", "modelpipe", "deploy", "--target", "local", "--name", "tiny-sd"]
    deployed = subprocess.run(
        [*command, "--model-uri", model_uri, "--port", str(port), "--state-dir", str(state_dir),
         "--registered-model-id", model.id, "--model-version-id", version.id,
         "--results-dir", str(tmp_path / "results"), "--timeout", "300"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip

    assert deployed.returncode == 0, deployed.stderr
    assert "Traceback" not in deployed.stderr
    assert s3_server.secret_access_key not in deployed.stdout + deployed.stderr
    pid = int((tmp_path / "results" / "RUNTIME_PID").read_text())
    url = (tmp_path / "results" / "ENDPOINT_URL").read_text()
    assert url == f"http://127.0.0.1:{port}"
    assert (tmp_path / "results" / "SERVED_MODEL_NAME").read_text() == "tiny-sd"
    assert _ready(url, "tiny-sd") == 200  # still serving after modelpipe exited
    assert json.loads((state_dir / "runtime.json").read_text())["pid"] == pid
    environment = httpx.get(f"{registry_server.api()}/serving_environment", params={"name": "local"}).json()
    recorded = httpx.get(
        f"{registry_server.api()}/inference_service",
        params={"name": "tiny-sd/local", "parentResourceId": environment["id"]},
    ).json()
    assert (tmp_path / "results" / "INFERENCE_SERVICE_ID").read_text() == recorded["id"]
    assert (recorded["modelVersionId"], recorded["customProperties"]["url"]["string_value"]) == (
        version.id,
        url,
    )

    stopped = subprocess.run(
        [*command[:-2], "--stop", "--state-dir", str(state_dir)],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert stopped.returncode == 0, stopped.stderr
    assert "stopped: true" in stopped.stdout
    assert not Path(f"/proc/{pid}").exists() or not processes.alive(pid)
    assert not (state_dir / "runtime.json").exists()


@pytest.mark.slow
def test_rerun_with_same_model_reuses_the_running_runtime(
    s3_server: S3Endpoint, model_uri: str, state_dir: Path
) -> None:
    options = LocalOptions(state_dir=state_dir, s3=_settings(s3_server), port=free_port(), timeout=300)
    first = deploy_model(target="local", name="tiny-sd", model_uri=model_uri, local=options)
    second = deploy_model(target="local", name="tiny-sd", model_uri=model_uri, local=options)

    assert first.created and not second.created
    assert second.runtime_pid == first.runtime_pid
    assert second.endpoint_url == first.endpoint_url


def test_model_that_fails_to_load_shows_runtime_log_lines(s3_server: S3Endpoint, state_dir: Path) -> None:
    options = LocalOptions(state_dir=state_dir, s3=_settings(s3_server), port=free_port(), timeout=300)

    with pytest.raises(DeployError, match=r"exited before it was ready; runtime log: .+") as exc:
        deploy_model(
            target="local", name="tiny-sd", model_uri=f"s3://{s3_server.bucket}/no-such-model", local=options
        )

    assert s3_server.secret_access_key not in str(exc.value)
    assert not (state_dir / "runtime.json").exists()
    assert "no-such-model" in (state_dir / "runtime.log").read_text()


def test_port_in_use_is_refused_before_starting(tmp_path: Path) -> None:
    s3 = S3Settings("http://127.0.0.1:1", SecretStr("k"), SecretStr("s"), "us-east-1", "models")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is already in use"):
            local_process.start_local_runtime(
                model_name="m", model_uri="s3://b/p", s3=s3, state_dir=tmp_path, port=port
            )
    assert not (tmp_path / "runtime.json").exists()
