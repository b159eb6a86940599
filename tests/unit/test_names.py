"""Kubernetes name rules: service names (DNS-1035), namespaces (DNS-1123 labels), claims (subdomains)."""

from __future__ import annotations

import pytest
from modelpipe.errors import ConfigError
from modelpipe.names import is_dns_label, is_dns_subdomain, main, require_namespace


@pytest.mark.parametrize("value", ["models", "team-a", "1st-team", "a" * 63])
def test_namespaces_that_kubernetes_accepts_pass(value: str) -> None:
    require_namespace("NAMESPACE", value)


@pytest.mark.parametrize("value", ["", "Team_A", "-a", "a-", "a" * 64, "x\n  evil: 1", "a.b"])
def test_a_bad_namespace_is_refused_naming_its_source(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^NAMESPACE must be a DNS label .*got "):
        require_namespace("NAMESPACE", value)


def test_service_names_must_start_with_a_letter_but_namespaces_need_not() -> None:
    assert not is_dns_label("1st-team")
    require_namespace("--namespace", "1st-team")


def test_claim_names_are_subdomains() -> None:
    assert is_dns_subdomain("model-cache.v1")
    assert not is_dns_subdomain("Model_Cache")


def test_the_scripts_entry_prints_one_error_line_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy.sh", "NAMESPACE", "modelpipe"]) == 0
    assert main(["deploy.sh", "NAMESPACE", "Team_A"]) == 1
    assert capsys.readouterr().err == (
        "deploy.sh: error: NAMESPACE must be a DNS label (lowercase letters, digits, '-'), got 'Team_A'\n"
    )
    assert main(["deploy.sh"]) == 2
