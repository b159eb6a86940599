"""registry_client without a server: URL rules, property typing, API version routing, error text."""

from __future__ import annotations

from typing import cast

import pytest
from model_registry import ModelRegistry
from modelpipe.errors import ConfigError
from modelpipe.registry_client import (
    _ApiVersionApiClient,
    describe_api_error,
    get_version,
    metadata_values,
    normalize_registry_url,
)
from mr_openapi import Configuration
from mr_openapi import exceptions as mr_exceptions


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://registry.apps.example.com", "https://registry.apps.example.com:443"),
        ("http://registry.ns.svc", "http://registry.ns.svc:80"),
        (
            "https://gateway.example.com/prefix/",
            "https://gateway.example.com:443/prefix",
        ),
    ],
)
def test_url_gets_an_explicit_port_and_no_trailing_slash(given: str, expected: str) -> None:
    assert normalize_registry_url(given) == expected


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (None, "not set"),
        ("", "not set"),
        ("127.0.0.1:8080", "http:// or https://"),
        ("ftp://host", "http:// or https://"),
        ("https://user:pw@host", "credentials"),
        ("https://host/api/model_registry/v1", "API path"),
    ],
)
def test_bad_url_is_refused_with_a_fix(given: str | None, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        normalize_registry_url(given)
    assert caught.value.fix
    assert "pw" not in caught.value.one_line()


def test_metadata_values_keep_doubles_strings_and_labels_typed() -> None:
    values = metadata_values({"score": 30.5, "score_text": "30.50", "benchmarked": "", "ok": True, "n": 3})
    assert values["score"].actual_instance.double_value == 30.5
    assert values["score_text"].actual_instance.string_value == "30.50"
    assert values["benchmarked"].actual_instance.string_value == ""
    assert values["ok"].actual_instance.bool_value is True
    assert values["n"].actual_instance.int_value == "3"


@pytest.mark.parametrize("version", ["v1", "v1alpha3"])
def test_generated_operations_are_routed_to_the_chosen_api_version(
    version: str,
) -> None:
    client = _ApiVersionApiClient(Configuration(host="http://127.0.0.1:8080"), version)
    _, url, *_ = client.param_serialize(
        method="GET",
        resource_path="/api/model_registry/v1/registered_models/{id}",
        path_params={"id": "4"},
        query_params=[("pageSize", "1")],
    )
    assert url == f"http://127.0.0.1:8080/api/model_registry/{version}/registered_models/4?pageSize=1"


def test_api_error_shows_status_and_server_message_only() -> None:
    err = mr_exceptions.ApiException(status=409, reason="Conflict")
    err.body = '{"code": "Conflict", "message": "model version name already exists"}'
    assert describe_api_error(err) == "HTTP 409 Conflict: model version name already exists"


@pytest.mark.parametrize("bad_id", ["", "abc", "0", "-1", "7 ", "1234567890"])
def test_malformed_version_id_is_refused_before_any_request(bad_id: str) -> None:
    not_a_client = cast(ModelRegistry, object())
    with pytest.raises(ConfigError, match="not a registry id"):
        get_version(not_a_client, bad_id)
