"""Kubernetes name rules for what we name (InferenceServices, registered models): checked and derived here."""

from __future__ import annotations

import re

from modelpipe.errors import ConfigError

DNS_LABEL_MAX = 63
# odh-model-controller caps ISVC names at 53 characters (a "-predictor" suffix must still fit in 63).
MAX_SERVICE_NAME_LENGTH = 53
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def is_dns_label(value: str, max_length: int = DNS_LABEL_MAX) -> bool:
    """True when ``value`` is a DNS-1035 label: lowercase letters, digits and '-', starting with a letter."""
    return len(value) <= max_length and _DNS_1035_LABEL.match(value) is not None


def require_dns_label(flag: str, value: str, max_length: int = DNS_LABEL_MAX) -> None:
    """Refuse a name Kubernetes would reject, naming the flag it came from.

    Raises:
        ConfigError: ``value`` is not a DNS-1035 label of at most ``max_length`` characters.
    """
    if not _DNS_1035_LABEL.match(value):
        raise ConfigError(
            f"{flag} {value!r} is not a DNS-1035 label",
            fix="use lowercase letters, digits and '-', starting with a letter",
        )
    if len(value) > max_length:
        raise ConfigError(f"{flag} {value!r} is longer than {max_length} characters", fix="shorten it")


def dns_label(name: str, max_length: int = MAX_SERVICE_NAME_LENGTH) -> str:
    """``name`` made a DNS-1035 label (an InferenceService name): lowercase, dashes, starts with a letter."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    label = label if label[:1].isalpha() else f"m-{label}"
    return label[:max_length].rstrip("-") or "model"
