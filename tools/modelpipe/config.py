"""Every environment variable modelpipe reads, parsed into typed settings (secrets masked in repr)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

# Re-exported: the data-connection naming rule lives in a dependency-free module deploy.sh can run.
from modelpipe.data_connection import DATA_CONNECTION_PREFIX as DATA_CONNECTION_PREFIX
from modelpipe.data_connection import storage_key_for as storage_key_for
from modelpipe.errors import ConfigError

# OpenShift AI data-connection keys: the names the cluster Secret uses, no aliases.
AWS_S3_ENDPOINT = "AWS_S3_ENDPOINT"
AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
AWS_S3_BUCKET = "AWS_S3_BUCKET"
HF_TOKEN = "HF_TOKEN"
MODEL_REGISTRY_URL = "MODEL_REGISTRY_URL"
MODEL_REGISTRY_TOKEN = "MODEL_REGISTRY_TOKEN"
MODEL_REGISTRY_AUTHOR = "MODEL_REGISTRY_AUTHOR"
MODEL_REGISTRY_TIMEOUT = "MODEL_REGISTRY_TIMEOUT"
# Seconds one registry request may take; a healthy registry answers in milliseconds.
DEFAULT_REGISTRY_TIMEOUT = 30.0
MODELPIPE_LOG_LEVEL = "MODELPIPE_LOG_LEVEL"
MODELPIPE_DEBUG = "MODELPIPE_DEBUG"
# Folder with lm_eval, guidellm and their python (the evaluation venv's bin); default: lm_eval on PATH.
MODELPIPE_EVAL_BIN = "MODELPIPE_EVAL_BIN"
DEFAULT_REGION = "us-east-1"


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


@dataclass(frozen=True)
class S3Settings:
    """S3 connection as an OpenShift AI data connection describes it."""

    endpoint_url: str | None
    access_key_id: SecretStr | None
    secret_access_key: SecretStr | None
    region: str
    bucket: str | None
    data_connection: str | None = None  # names the Secret in errors; the values come from the env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        """Read the data-connection keys: AWS_S3_ENDPOINT, AWS_*_KEY*, AWS_DEFAULT_REGION, AWS_S3_BUCKET."""
        e = _env(env)
        return cls(
            endpoint_url=e.get(AWS_S3_ENDPOINT) or None,
            access_key_id=_secret(e.get(AWS_ACCESS_KEY_ID)),
            secret_access_key=_secret(e.get(AWS_SECRET_ACCESS_KEY)),
            region=e.get(AWS_DEFAULT_REGION) or DEFAULT_REGION,
            bucket=e.get(AWS_S3_BUCKET) or None,
        )

    def require_credentials(self) -> None:
        """Raise ConfigError naming every missing credential variable.

        Raises:
            ConfigError: AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is unset.
        """
        missing = [
            name
            for name, value in (
                (AWS_ACCESS_KEY_ID, self.access_key_id),
                (AWS_SECRET_ACCESS_KEY, self.secret_access_key),
            )
            if value is None
        ]
        if missing:
            raise ConfigError(
                f"S3 credentials missing: {', '.join(missing)} not set",
                fix=(
                    f"mount the Secret {storage_key_for(self.data_connection)} (its AWS_* keys)"
                    if self.data_connection
                    else "export them or mount the data-connection Secret"
                ),
            )

    def key_pair(self) -> tuple[SecretStr, SecretStr]:
        """(access key id, secret access key).

        Raises:
            ConfigError: Either is unset (both named).
        """
        self.require_credentials()
        if self.access_key_id is None or self.secret_access_key is None:  # narrowed for the type checker
            raise ConfigError("S3 credentials missing")
        return self.access_key_id, self.secret_access_key


@dataclass(frozen=True)
class RegistrySettings:
    """Where the Kubeflow Model Registry is and how to authenticate."""

    url: str | None
    token: SecretStr | None
    author: str
    timeout: float = DEFAULT_REGISTRY_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RegistrySettings:
        """Read MODEL_REGISTRY_URL, MODEL_REGISTRY_TOKEN, MODEL_REGISTRY_AUTHOR and MODEL_REGISTRY_TIMEOUT.

        Raises:
            ConfigError: MODEL_REGISTRY_TIMEOUT is not a positive number of seconds.
        """
        e = _env(env)
        return cls(
            url=e.get(MODEL_REGISTRY_URL) or None,
            token=_secret(e.get(MODEL_REGISTRY_TOKEN)),
            author=e.get(MODEL_REGISTRY_AUTHOR) or "modelpipe",
            timeout=_seconds(e, MODEL_REGISTRY_TIMEOUT, DEFAULT_REGISTRY_TIMEOUT),
        )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name) or ""
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds", fix=f"e.g. {name}={default:g}")
    return value


def hf_token(env: Mapping[str, str] | None = None) -> SecretStr | None:
    """The Hugging Face token from HF_TOKEN, if set."""
    return _secret(_env(env).get(HF_TOKEN))


HF_ENDPOINT = "HF_ENDPOINT"


def hf_endpoint(env: Mapping[str, str] | None = None) -> str | None:
    """Hub URL from HF_ENDPOINT (a mirror, an air-gapped cluster's proxy, a test fake), or None for
    https://huggingface.co.

    Raises:
        ConfigError: HF_ENDPOINT is set but not an http(s) URL (huggingface_hub would fail on every file
            with a message that does not name the setting).
    """
    value = (_env(env).get(HF_ENDPOINT) or "").strip()
    if not value:
        return None
    parsed = urlsplit(value)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ConfigError(
            f"{HF_ENDPOINT}={value!r} is not an http(s) URL",
            fix=f"e.g. {HF_ENDPOINT}=https://hf-mirror.example.com, or leave it empty for huggingface.co",
        )
    return value.rstrip("/")


def debug_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when MODELPIPE_DEBUG asks for tracebacks on known errors."""
    return _env(env).get(MODELPIPE_DEBUG, "").lower() in {"1", "true", "yes"}


def log_level(env: Mapping[str, str] | None = None) -> str:
    """Log level from MODELPIPE_LOG_LEVEL (default INFO)."""
    return (_env(env).get(MODELPIPE_LOG_LEVEL) or "INFO").upper()


REGISTRY_AUTH_FILE = "REGISTRY_AUTH_FILE"
DOCKER_CONFIG = "DOCKER_CONFIG"


def registry_auth_file(env: Mapping[str, str] | None = None) -> str | None:
    """Image registry credentials file: REGISTRY_AUTH_FILE, else DOCKER_CONFIG/config.json, else None."""
    e = _env(env)
    if e.get(REGISTRY_AUTH_FILE):
        return e[REGISTRY_AUTH_FILE]
    if e.get(DOCKER_CONFIG):
        return os.path.join(e[DOCKER_CONFIG], "config.json")
    return None


MODELPIPE_LOCAL_DIR = "MODELPIPE_LOCAL_DIR"


def local_state_dir(env: Mapping[str, str] | None = None) -> str:
    """Where local runs keep state (S3 data, registry.db, runs/): MODELPIPE_LOCAL_DIR, default ``.local``."""
    return _env(env).get(MODELPIPE_LOCAL_DIR) or ".local"


def eval_bin_dir(env: Mapping[str, str] | None = None) -> str | None:
    """The evaluation tools folder from MODELPIPE_EVAL_BIN, or None to look lm_eval up on PATH."""
    return _env(env).get(MODELPIPE_EVAL_BIN) or None


MODELPIPE_VLLM_PYTHON = "MODELPIPE_VLLM_PYTHON"
VLLM_VENV = ".venv-vllm"
# tools/modelpipe/config.py -> the repository root, where `make vllm-venv` puts the vLLM venv.
_REPO_ROOT = Path(__file__).resolve().parents[2]


def vllm_python(env: Mapping[str, str] | None = None) -> str:
    """The vLLM CPU venv's interpreter for local serving: MODELPIPE_VLLM_PYTHON, else ``.venv-vllm``
    in the repository (or the working directory).

    Raises:
        ConfigError: No such interpreter exists.
    """
    configured = _env(env).get(MODELPIPE_VLLM_PYTHON)
    candidates = (
        [Path(configured)]
        if configured
        else [root / VLLM_VENV / "bin" / "python" for root in (_REPO_ROOT, Path.cwd())]
    )
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ConfigError(
        f"no vLLM environment: {' or '.join(str(c) for c in candidates)} is not an executable Python",
        fix=f"run `make vllm-venv` (tools/scripts/setup-vllm-venv.sh) or set {MODELPIPE_VLLM_PYTHON}",
    )


# Bearer token for an endpoint deployed with auth=true: the `token` key of Secret NAME-sa-token, which the
# benchmark and evaluate Tasks map in (secretKeyRef, optional); never a flag, so never on argv.
ENDPOINT_TOKEN = "ENDPOINT_TOKEN"


def endpoint_token(env: Mapping[str, str] | None = None) -> SecretStr | None:
    """The endpoint's bearer token from ENDPOINT_TOKEN (surrounding whitespace dropped), or None."""
    return _secret((_env(env).get(ENDPOINT_TOKEN) or "").strip() or None)


# The image the vLLM ServingRuntime runs, from the modelpipe-serving-runtimes ConfigMap (gitops/base copies
# it from the ServingRuntime, so the pinned digest has one home); register records it on LLM versions.
VLLM_RUNTIME_IMAGE = "VLLM_RUNTIME_IMAGE"


def vllm_runtime_image(env: Mapping[str, str] | None = None) -> str | None:
    """The vLLM ServingRuntime's image (``REPO@sha256:...``) from VLLM_RUNTIME_IMAGE, or None if unknown."""
    return _env(env).get(VLLM_RUNTIME_IMAGE) or None


# Read by modelpipe but no cluster setting, so .env.template does not offer them: per-run switches of
# the CLI, the local stand-ins' and dev tools' paths, a fallback of
# REGISTRY_AUTH_FILE, what the bundle itself fills (the vLLM image, the endpoint token deploy creates).
# Every other variable named above is offered there (tests/manifests checks it).
NOT_CLUSTER_SETTINGS = frozenset(
    {
        MODELPIPE_LOG_LEVEL,
        MODELPIPE_DEBUG,
        MODELPIPE_EVAL_BIN,
        MODELPIPE_LOCAL_DIR,
        MODELPIPE_VLLM_PYTHON,
        DOCKER_CONFIG,
        VLLM_RUNTIME_IMAGE,
        ENDPOINT_TOKEN,
    }
)
