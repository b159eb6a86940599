"""Starting the runtime: from S3 via STORAGE_URI, and one clear line plus exit 1 for an unreadable model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.runtime import SERVER_ENV, RuntimeServer
from tests.support.tools import REPO_ROOT, free_port

from .clients import FAST, v1_image_bytes, v1_predict

pytestmark = pytest.mark.integration


def _run_runtime(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "diffusers_runtime",
        "--http_port",
        str(free_port()),
        "--enable_grpc",
        "false",
    ]
    return subprocess.run(
        [*command, *args],
        check=False,
        cwd=REPO_ROOT,
        env={**SERVER_ENV, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("diffusers_runtime: error:")]


def test_loads_from_s3_storage_uri_with_data_connection_env(
    s3_server,
    tiny_sd_dir: Path,
    tmp_path: Path,
    runtime_server_factory: Callable[..., RuntimeServer],
) -> None:
    client = s3_server.client()
    for path in sorted(p for p in tiny_sd_dir.rglob("*") if p.is_file()):
        client.upload_file(str(path), s3_server.bucket, f"tiny-sd/{path.relative_to(tiny_sd_dir)}")
    env = dict(s3_server.env)
    # A data connection names the endpoint AWS_S3_ENDPOINT only; the runtime maps it for kserve_storage.
    env.pop("AWS_ENDPOINT_URL")
    env["STORAGE_URI"] = f"s3://{s3_server.bucket}/tiny-sd"
    server = runtime_server_factory(model_dir=None, env=env, download_dir=str(tmp_path / "download"))
    response = v1_predict(server, [{"prompt": "from s3", "seed": 1, **FAST}])
    assert len(v1_image_bytes(response)) == 1
    assert (tmp_path / "download" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert s3_server.secret_access_key not in server.log()


def test_missing_model_dir_exits_1_with_one_line(tmp_path: Path) -> None:
    result = _run_runtime("--model_dir", str(tmp_path / "missing"))
    assert result.returncode == 1
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and str(tmp_path / "missing") in lines[0]
    assert "Traceback" not in result.stderr


def test_corrupt_weights_exit_1_with_one_line(tiny_sd_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd_dir, broken)
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    result = _run_runtime("--model_dir", str(broken))
    assert result.returncode == 1
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and "cannot load model" in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_s3_exits_1_without_leaking_the_secret(tmp_path: Path) -> None:
    secret = "not-a-real-secret-0123456789"
    command = [sys.executable, "-m", "diffusers_runtime", "--enable_grpc", "false"]
    result = subprocess.run(
        [
            *command,
            "--http_port",
            str(free_port()),
            "--download_dir",
            str(tmp_path / "dl"),
        ],
        check=False,
        cwd=REPO_ROOT,
        env={
            **SERVER_ENV,
            "PATH": "/usr/bin:/bin",
            "STORAGE_URI": "s3://models/nothing",
            "AWS_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "AWS_ACCESS_KEY_ID": "key",
            "AWS_SECRET_ACCESS_KEY": secret,
            "S3_MAX_ATTEMPTS": "1",
            "S3_CONNECT_TIMEOUT": "2",
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1
    assert len(_error_lines(result.stderr)) == 1
    assert secret not in result.stderr + result.stdout


def test_misspelt_flag_is_a_usage_error(tiny_sd_dir: Path) -> None:
    result = _run_runtime("--model_dir", str(tiny_sd_dir), "--max_bach_size", "2")
    assert result.returncode == 2
    assert "--max_bach_size" in result.stderr
