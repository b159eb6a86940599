"""One place that keeps secret values out of logs, results and reports."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

# Environment variables whose values are secrets wherever they appear.
SECRET_ENV_NAMES: tuple[str, ...] = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "ENDPOINT_TOKEN",
    "HF_TOKEN",
    "MODEL_REGISTRY_TOKEN",
    "REGISTRY_PASSWORD",
    "REGISTRY_TOKEN",
)
MASK = "***"
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value (e.g. read from a file) so later redaction hides it too."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def secret_values(env: dict[str, str] | None = None) -> Iterable[str]:
    """All secret values currently known: from the environment and registered explicitly."""
    env = dict(os.environ) if env is None else env
    for name in SECRET_ENV_NAMES:
        value = env.get(name)
        if value and len(value) >= 4:
            yield value
    yield from _extra_secrets


def redact(text: str) -> str:
    """Replace every known secret value in ``text`` with ``***``."""
    # Longest first so a secret containing another is masked whole.
    for value in sorted(set(secret_values()), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that masks secrets in the fully formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
