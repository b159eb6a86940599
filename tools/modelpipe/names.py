"""Kubernetes name rules for what we name (InferenceServices, registered models): checked and derived here."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from modelpipe.errors import ConfigError

DNS_LABEL_MAX = 63
# odh-model-controller caps ISVC names at 53 characters (a "-predictor" suffix must still fit in 63).
MAX_SERVICE_NAME_LENGTH = 53
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Namespaces and claims follow RFC 1123 (may start with a digit); services RFC 1035.
_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
DNS_SUBDOMAIN_MAX = 253


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


def require_namespace(what: str, value: str) -> None:
    """Refuse a namespace name Kubernetes would reject (a DNS-1123 label), naming where it came from.

    Raises:
        ConfigError: ``value`` is not a DNS-1123 label of at most 63 characters.
    """
    if len(value) > DNS_LABEL_MAX or not _DNS_1123_LABEL.match(value):
        raise ConfigError(f"{what} must be a DNS label (lowercase letters, digits, '-'), got {value!r}")


def is_dns_subdomain(value: str) -> bool:
    """True when ``value`` is a DNS-1123 subdomain (the rule for PVC and Secret names)."""
    return len(value) <= DNS_SUBDOMAIN_MAX and _DNS_1123_SUBDOMAIN.match(value) is not None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m modelpipe.names PROG WHAT VALUE``: the shell scripts' namespace check (one rule, here).

    Prints ``PROG: error: ...`` and returns 1 for a bad name, as the scripts' own errors read.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m modelpipe.names PROG WHAT VALUE", file=sys.stderr)
        return 2
    prog, what, value = args
    try:
        require_namespace(what, value)
    except ConfigError as err:
        print(f"{prog}: error: {err.one_line()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
