"""Serving defaults that travel with a model: parsed from flags, kept on the registry version, given to the
runtime, and read back from a live endpoint's V2 model metadata (locally; on a cluster deploy records
the flags it gave).

One home for the names: the version properties ``serving_default_steps``/``_guidance``/``_size``, the
runtime flags ``--default_steps``/``--default_guidance``/``--default_size`` and the metadata keys the
runtime reports (``default_steps``, ``default_guidance``, ``default_size``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from modelpipe.endpoint_auth import AUTH_STATUSES, auth_failure, auth_headers
from modelpipe.errors import ConfigError

PROP_DEFAULT_STEPS = "serving_default_steps"
PROP_DEFAULT_GUIDANCE = "serving_default_guidance"
PROP_DEFAULT_SIZE = "serving_default_size"
# What the runtime serves with, recorded by deploy (a readable one-liner for the dashboard): read from a
# local runtime's metadata, or the flags deploy gave a cluster's runtime.
PROP_SERVED_DEFAULTS = "serving_defaults"
MAX_GUIDANCE = 30.0
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


@dataclass(frozen=True)
class ServingDefaults:
    """Steps, guidance and size of requests that leave them out; None leaves the value to the model."""

    steps: int | None = None
    guidance: float | None = None
    size: tuple[int, int] | None = None  # (width, height)

    @property
    def empty(self) -> bool:
        return self.steps is None and self.guidance is None and self.size is None

    def properties(self) -> dict[str, str]:
        """Model-version custom properties (strings: the dashboard shows only strings)."""
        props: dict[str, str] = {}
        if self.steps is not None:
            props[PROP_DEFAULT_STEPS] = str(self.steps)
        if self.guidance is not None:
            props[PROP_DEFAULT_GUIDANCE] = f"{self.guidance:g}"
        if self.size is not None:
            props[PROP_DEFAULT_SIZE] = f"{self.size[0]}x{self.size[1]}"
        return props

    def describe(self) -> str:
        """A one-liner in the shape of ``ServedDefaults.describe``; unset values are the model's own."""
        if self.empty:
            return "the model's own (no default flags given to the runtime)"
        size = f"{self.size[0]}x{self.size[1]}" if self.size is not None else "the model's size"
        steps = f"{self.steps} steps" if self.steps is not None else "the model's steps"
        guidance = f"guidance {self.guidance:g}" if self.guidance is not None else "the model's guidance"
        return f"{size}, {steps}, {guidance} (runtime flags)"

    def runtime_args(self) -> tuple[str, ...]:
        """The diffusers runtime's flags for these defaults."""
        args: list[str] = []
        if self.steps is not None:
            args += ["--default_steps", str(self.steps)]
        if self.guidance is not None:
            args += ["--default_guidance", f"{self.guidance:g}"]
        if self.size is not None:
            args += ["--default_size", f"{self.size[0]}x{self.size[1]}"]
        return tuple(args)


NO_SERVING_DEFAULTS = ServingDefaults()


def parse_serving_defaults(*, steps: str = "", guidance: str = "", size: str = "") -> ServingDefaults:
    """Flag values (``""`` = the model's own) -> ServingDefaults.

    Raises:
        ConfigError: A value is not a step count >= 1, a guidance in [0, 30] or WIDTHxHEIGHT.
    """
    return ServingDefaults(
        steps=_steps(steps, "--default-steps"),
        guidance=_guidance(guidance, "--default-guidance"),
        size=_size(size, "--default-size"),
    )


def from_properties(properties: Mapping[str, Any]) -> ServingDefaults:
    """The defaults recorded on a model version (missing keys stay None)."""
    return ServingDefaults(
        steps=_steps(str(properties.get(PROP_DEFAULT_STEPS, "")), PROP_DEFAULT_STEPS),
        guidance=_guidance(str(properties.get(PROP_DEFAULT_GUIDANCE, "")), PROP_DEFAULT_GUIDANCE),
        size=_size(str(properties.get(PROP_DEFAULT_SIZE, "")), PROP_DEFAULT_SIZE),
    )


@dataclass(frozen=True)
class ServedDefaults:
    """The defaults a live runtime reports for its model, and where they came from."""

    steps: int
    guidance: float
    width: int
    height: int
    family: str = ""
    source: str = ""

    def describe(self) -> str:
        text = f"{self.width}x{self.height}, {self.steps} steps, guidance {self.guidance:g}"
        if self.family:
            text += f" ({self.family}; {self.source})" if self.source else f" ({self.family})"
        return text


def read_served_defaults(
    endpoint: str, model_name: str, *, timeout: float = 30.0, token: SecretStr | None = None
) -> ServedDefaults:
    """Ask a live runtime for its model's serving defaults (``GET /v2/models/NAME`` ``parameters``).

    ``token`` is the bearer token of an endpoint deployed with ``auth=true``.

    Raises:
        ConfigError: The endpoint does not answer or refuses access (401/403), or its metadata carries no
            serving defaults (an older runtime): pass the settings explicitly then.
    """
    url = f"{endpoint.rstrip('/')}/v2/models/{model_name}"
    try:
        response = httpx.get(url, timeout=timeout, headers=auth_headers(token))
    except httpx.HTTPError as err:
        raise _unreadable(url, err) from err
    if response.status_code in AUTH_STATUSES:
        message, fix = auth_failure(response.status_code, url, token_sent=token is not None)
        raise ConfigError(message, fix=fix)
    try:
        response.raise_for_status()
        params = response.json().get("parameters") or {}
    except (httpx.HTTPError, ValueError) as err:
        raise _unreadable(url, err) from err
    try:
        width, height = (int(v) for v in str(params["default_size"]).split("x"))
        return ServedDefaults(
            steps=int(params["default_steps"]),
            guidance=float(params["default_guidance"]),
            width=width,
            height=height,
            family=str(params.get("family", "")),
            source=str(params.get("defaults_source", "")),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"{url} reports no serving defaults (missing or bad {err})",
            fix="serve with a runtime that reports them, or pass --steps, --size and --guidance",
        ) from err


def _unreadable(url: str, err: Exception) -> ConfigError:
    return ConfigError(
        f"cannot read the served model's defaults from {url}: {err}",
        fix="check --endpoint and --model-name, or pass --steps, --size and --guidance",
    )


def _steps(text: str, name: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"{name} {text!r} is not an integer >= 1", fix=f"e.g. {name} 4, or empty")
    return int(text)


def _guidance(text: str, name: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= MAX_GUIDANCE:
        raise ConfigError(
            f"{name} {text!r} is not a number between 0 and {MAX_GUIDANCE:g}", fix=f"e.g. {name} 0, or empty"
        )
    return value


def _size(text: str, name: str) -> tuple[int, int] | None:
    if not text.strip():
        return None
    match = _SIZE.match(text.strip())
    if match is None or int(match[1]) % 8 or int(match[2]) % 8:
        raise ConfigError(
            f"{name} {text!r} is not WIDTHxHEIGHT in multiples of 8", fix=f"e.g. {name} 512x512, or empty"
        )
    return int(match[1]), int(match[2])
