"""Serving defaults: flag parsing, registry properties, runtime flags, the ISVC args, served metadata."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from modelpipe.errors import ConfigError
from modelpipe.serving_defaults import (
    ServingDefaults,
    from_properties,
    parse_serving_defaults,
    read_served_defaults,
)
from modelpipe.targets.kserve import IsvcSpec, build_inference_service
from pydantic import SecretStr

from tests.support.fake_kube import validation_errors


def test_empty_flags_leave_everything_to_the_model() -> None:
    defaults = parse_serving_defaults(steps="", guidance="", size="")
    assert defaults.empty and defaults.properties() == {} and defaults.runtime_args() == ()


@pytest.mark.parametrize(
    ("defaults", "text"),
    [
        (
            ServingDefaults(steps=1, guidance=0.0, size=(512, 768)),
            "512x768, 1 steps, guidance 0 (runtime flags)",
        ),
        (ServingDefaults(guidance=3.5), "the model's size, the model's steps, guidance 3.5 (runtime flags)"),
        (ServingDefaults(), "the model's own (no default flags given to the runtime)"),
    ],
)
def test_the_flags_a_deploy_gives_are_described_like_served_defaults(
    defaults: ServingDefaults, text: str
) -> None:
    assert defaults.describe() == text


def test_defaults_round_trip_through_the_version_properties() -> None:
    defaults = parse_serving_defaults(steps="1", guidance="0", size="512x768")
    assert defaults == ServingDefaults(steps=1, guidance=0.0, size=(512, 768))
    assert from_properties({**defaults.properties(), "source": "hf://x/y"}) == defaults
    assert defaults.runtime_args() == (
        "--default_steps",
        "1",
        "--default_guidance",
        "0",
        "--default_size",
        "512x768",
    )


@pytest.mark.parametrize(
    ("flag", "value"),
    [("steps", "0"), ("steps", "two"), ("guidance", "31"), ("guidance", "nan"), ("size", "65x64")],
)
def test_bad_values_name_the_flag(flag: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"--default-{flag}"):
        parse_serving_defaults(**{flag: value})


def test_kserve_passes_the_defaults_as_runtime_args() -> None:
    spec = IsvcSpec(
        name="sd-turbo",
        namespace="models",
        model_uri="s3://models/sd-turbo/v1",
        serving_runtime="diffusers-runtime",
        runtime_args=ServingDefaults(steps=1, guidance=0.0).runtime_args(),
    )
    body = build_inference_service(spec)
    assert body["spec"]["predictor"]["model"]["args"] == ["--default_steps", "1", "--default_guidance", "0"]
    assert validation_errors(body) == []


def _answer(monkeypatch: pytest.MonkeyPatch, status: int, payload: dict[str, Any]) -> list[dict[str, str]]:
    sent: list[dict[str, str]] = []

    def fake_get(url: str, timeout: float, headers: dict[str, str]) -> httpx.Response:
        sent.append(headers)
        return httpx.Response(status, json=payload, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", fake_get)
    return sent


def test_served_defaults_are_asked_with_the_endpoint_token(monkeypatch: pytest.MonkeyPatch) -> None:
    params = {"default_steps": 4, "default_guidance": 0.0, "default_size": "64x64"}
    sent = _answer(monkeypatch, 200, {"name": "m", "parameters": params})
    read_served_defaults("http://127.0.0.1:1", "m", token=SecretStr("tok-1234"))
    read_served_defaults("http://127.0.0.1:1", "m")
    assert sent == [{"Authorization": "Bearer tok-1234"}, {}]


@pytest.mark.parametrize(
    ("status", "token", "says"), [(401, None, "none was sent"), (403, "tok-1234", "refused")]
)
def test_access_refused_names_the_status_and_the_token_variable(
    monkeypatch: pytest.MonkeyPatch, status: int, token: str | None, says: str
) -> None:
    _answer(monkeypatch, status, {"error": "denied"})
    with pytest.raises(ConfigError, match=f"HTTP {status}") as info:
        read_served_defaults("http://127.0.0.1:1", "m", token=SecretStr(token) if token else None)
    assert says in info.value.message and "ENDPOINT_TOKEN" in info.value.message + (info.value.fix or "")


def test_served_defaults_come_from_the_v2_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    params = {"default_steps": 4, "default_guidance": 0.0, "default_size": "1024x768", "family": "flux"}
    _answer(monkeypatch, 200, {"name": "m", "parameters": params})
    served = read_served_defaults("http://127.0.0.1:1", "m")
    assert (served.steps, served.guidance, served.width, served.height) == (4, 0.0, 1024, 768)
    assert served.describe() == "1024x768, 4 steps, guidance 0 (flux)"


def test_a_runtime_without_defaults_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, 200, {"name": "m", "inputs": []})
    with pytest.raises(ConfigError, match="reports no serving defaults"):
        read_served_defaults("http://127.0.0.1:1", "m")
