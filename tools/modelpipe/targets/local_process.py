"""Run the diffusers runtime as a detached local process (the local stand-in for a KServe predictor)."""

from __future__ import annotations

import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelpipe.config import (
    AWS_ACCESS_KEY_ID,
    AWS_DEFAULT_REGION,
    AWS_S3_BUCKET,
    AWS_S3_ENDPOINT,
    AWS_SECRET_ACCESS_KEY,
    S3Settings,
)
from modelpipe.redaction import SECRET_ENV_NAMES
from modelpipe.targets.local_served import (
    MODEL_DIR,
    LocalRuntime,
    ServedProgram,
    ServeRequest,
    launch,
    reuse_or_clear,
    stop_pid,
    stop_served,
)

STATE_FILE = "runtime.json"
LOG_FILE = "runtime.log"
RUNTIME_MODULE = "diffusers_runtime"
# Secrets the runtime never needs; the data-connection keys it does need are set explicitly.
_DROP_FROM_CHILD_ENV = tuple(
    name for name in SECRET_ENV_NAMES if name not in (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
)


def runtime_env(model_uri: str, s3: S3Settings, base: Mapping[str, str]) -> dict[str, str]:
    """The child environment: ``base`` without unrelated secrets, plus STORAGE_URI and the data connection.

    KServe's storage code reads AWS_ENDPOINT_URL; the data connection names the endpoint AWS_S3_ENDPOINT;
    both are set.
    """
    env = {key: value for key, value in base.items() if key not in _DROP_FROM_CHILD_ENV}
    env["STORAGE_URI"] = model_uri
    env[AWS_DEFAULT_REGION] = s3.region
    if s3.endpoint_url:
        env[AWS_S3_ENDPOINT] = env["AWS_ENDPOINT_URL"] = s3.endpoint_url
    if s3.bucket:
        env[AWS_S3_BUCKET] = s3.bucket
    if s3.access_key_id is not None and s3.secret_access_key is not None:
        env[AWS_ACCESS_KEY_ID] = s3.access_key_id.get_secret_value()
        env[AWS_SECRET_ACCESS_KEY] = s3.secret_access_key.get_secret_value()
    return env


def runtime_command(
    model_name: str,
    port: int,
    extra_args: Sequence[str],
    python: str,
    download_dir: Path | None = None,
    *,
    model_dir: Path | str | None = None,
    grpc: bool = False,
) -> list[str]:
    """``python -m diffusers_runtime``: HTTP on ``port``, no gRPC unless asked (8081 would collide), the model
    downloaded from STORAGE_URI into ``download_dir`` or read from ``model_dir``.

    One command line for the local deploy, the tests and the benchmarks.
    """
    where = ["--download_dir", str(download_dir)] if download_dir is not None else []
    where += ["--model_dir", str(model_dir)] if model_dir is not None else []
    return [
        python, "-m", RUNTIME_MODULE,
        "--model_name", model_name,
        "--http_port", str(port),
        "--enable_grpc", "true" if grpc else "false",
        *where,
        *extra_args,
    ]  # fmt: skip


def flag_args(flags: Mapping[str, object]) -> list[str]:
    """kserve-style ``--name value`` pairs for :func:`runtime_command`; booleans true/false, None left out."""
    args: list[str] = []
    for name, value in flags.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        args += [f"--{name}", str(value)]
    return args


def model_ready(endpoint_url: str, model_name: str, timeout: float = 2.0) -> bool:
    """True when ``GET /v2/models/{name}/ready`` answers 200 (``/v2/health/ready`` is always true)."""
    try:
        with urllib.request.urlopen(
            f"{endpoint_url}/v2/models/{model_name}/ready", timeout=timeout
        ) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


RUNTIME = ServedProgram(
    label="runtime", module=RUNTIME_MODULE, state_file=STATE_FILE, log_file=LOG_FILE, ready=model_ready
)


def stop_local_runtime(target: int | Path) -> bool:
    """Stop a local runtime by pid or by the state dir it was started with. Returns False if none ran.

    Sends SIGTERM to its process group, then SIGKILL; removes the state file.

    Raises:
        DeployError: The pid belongs to some other program, or the process survives SIGKILL.
    """
    if isinstance(target, Path):
        return stop_served(target, RUNTIME)
    return stop_pid(target, RUNTIME)


def start_local_runtime(
    *,
    model_name: str,
    model_uri: str,
    s3: S3Settings,
    state_dir: Path,
    port: int = 8080,
    timeout: float = 600.0,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
    poll_seconds: float = 0.5,
) -> LocalRuntime:
    """Start the runtime detached (own session; it outlives this process), loading ``model_uri`` from S3.

    Idempotent: an identical runtime recorded in ``state_dir`` that still answers ready is reused; any
    other server recorded there is stopped first (one local deployment per state folder).

    Raises:
        ConfigError: The port is taken or S3 credentials are missing.
        DeployError: The runtime exited or was not ready in ``timeout`` (message: its last log lines).
    """
    s3.require_credentials()
    request = ServeRequest(model_name, model_uri, port, list(extra_args))
    reused = reuse_or_clear(state_dir, RUNTIME, request)
    if reused is not None:
        return reused
    download_dir = state_dir / MODEL_DIR
    # Only a cache of the S3 copy; cleared so a previous model's files never mix with this one.
    shutil.rmtree(download_dir, ignore_errors=True)
    download_dir.mkdir()
    return launch(
        state_dir,
        RUNTIME,
        request,
        command=runtime_command(model_name, port, request.args, python, download_dir),
        env=runtime_env(model_uri, s3, os.environ),
        timeout=timeout,
        poll_seconds=poll_seconds,
        check="check the model URI and the S3 data connection",
    )
