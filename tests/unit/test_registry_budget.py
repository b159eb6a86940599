"""Registry timeout settings and the message a registry that never answers produces."""

from __future__ import annotations

import pytest
from modelpipe.config import DEFAULT_REGISTRY_TIMEOUT, RegistrySettings
from modelpipe.errors import ConfigError
from modelpipe.registry_client import RegistryTimeoutError, request_budget, unreachable_error


def test_timeout_defaults_and_reads_the_environment() -> None:
    assert RegistrySettings.from_env({}).timeout == DEFAULT_REGISTRY_TIMEOUT
    assert RegistrySettings.from_env({"MODEL_REGISTRY_TIMEOUT": "2.5"}).timeout == 2.5


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "nan", "99999"])
def test_bad_timeout_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="MODEL_REGISTRY_TIMEOUT"):
        RegistrySettings.from_env({"MODEL_REGISTRY_TIMEOUT": raw})


def test_budget_covers_every_attempt_and_backoff() -> None:
    assert request_budget(10.0) == pytest.approx(3 * 10.0 + 1.5)


def test_timeout_message_names_endpoint_budget_and_fix() -> None:
    url = "http://127.0.0.1:9/api/model_registry/v1/registered_models"
    error = unreachable_error(RegistryTimeoutError(url, 2.0, 3), "connecting to http://127.0.0.1:9")
    line = error.one_line()
    assert url in line and "2 s" in line and "budget 7.5 s" in line
    assert "MODEL_REGISTRY_TIMEOUT" in (error.fix or "")


def test_exception_without_a_message_still_gets_a_reason() -> None:
    error = unreachable_error(TimeoutError(), "reading model 7", url="http://127.0.0.1:9")
    assert "no reason given" in error.one_line() and "http://127.0.0.1:9" in error.one_line()
