"""Where the model comes from: a local folder, or a URI (s3://, hf://, ...) downloaded with kserve_storage."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

from .errors import ModelLoadError

logger = logging.getLogger(__name__)

LOCAL_PREFIXES = ("file://",)


def is_remote(uri: str) -> bool:
    """True when ``uri`` names remote storage that has to be downloaded first."""
    return "://" in uri and not uri.startswith(LOCAL_PREFIXES)


def local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def data_connection_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment additions so kserve_storage sees an OpenShift AI data connection.

    Data connections name the endpoint ``AWS_S3_ENDPOINT``; kserve_storage (and boto3) read
    ``AWS_ENDPOINT_URL``. An explicit ``AWS_ENDPOINT_URL`` wins.
    """
    endpoint = environ.get("AWS_S3_ENDPOINT", "").strip()
    if not endpoint or environ.get("AWS_ENDPOINT_URL"):
        return {}
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    return {"AWS_ENDPOINT_URL": endpoint}


def check_model_dir(path: Path, source: str) -> Path:
    """Fail fast with one line when ``path`` is not a readable diffusers pipeline folder.

    Raises:
        ModelLoadError: Missing folder, missing or unreadable ``model_index.json``.
    """
    if not path.is_dir():
        raise ModelLoadError(source, f"{path} is not a folder", "set --model_dir or STORAGE_URI to the model")
    index = path / "model_index.json"
    try:
        content = json.loads(index.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            source, f"{index} does not exist", "point at a diffusers pipeline saved with save_pretrained"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(source, f"{index} is unreadable: {err}") from None
    if not isinstance(content, dict) or "_class_name" not in content:
        raise ModelLoadError(source, f"{index} has no _class_name; not a diffusers pipeline")
    return path


def download_model(uri: str, dest: Path, environ: dict[str, str] | None = None) -> Path:
    """Download ``uri`` into ``dest`` with kserve_storage (data-connection env honoured) and check it.

    Args:
        uri: s3://BUCKET/PREFIX (or any scheme kserve_storage knows).
        dest: Local folder to fill.
        environ: Process environment to extend with the data-connection endpoint (default ``os.environ``).

    Raises:
        ModelLoadError: The download failed or did not produce a pipeline folder.
    """
    from kserve_storage import Storage

    env = os.environ if environ is None else environ
    env.update(data_connection_env(env))
    started = time.monotonic()
    try:
        out = Storage.download(uri, str(dest))
    # kserve_storage raises bare Exception/RuntimeError subclasses with readable messages for every storage
    # failure (missing bucket, no credentials, nothing under the prefix).
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelLoadError(uri, reason, "check STORAGE_URI and the data connection (AWS_* env)") from None
    logger.info("downloaded %s to %s in %.1f s", uri, out, time.monotonic() - started)
    return check_model_dir(Path(out), uri)
