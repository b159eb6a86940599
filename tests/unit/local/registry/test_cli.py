"""`registry serve` flag handling, with the server itself patched out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from modelpipe.cli import registry as registry_cli
from modelpipe.local.registry.__main__ import main
from modelpipe.local.registry.server import bind_socket


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    calls: dict[str, Any] = {}
    monkeypatch.setattr(registry_cli, "serve_registry", lambda **kwargs: calls.update(kwargs))
    monkeypatch.delenv("MODEL_REGISTRY_TOKEN", raising=False)
    return calls


def test_serve_passes_flags_to_the_server(served: dict[str, Any], tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    code = main(["--port", "9999", "--db", db, "--token", "tok-123", "--api-versions", "v1alpha3"])
    assert code == 0
    assert served["port"] == 9999 and served["host"] == "127.0.0.1"
    assert served["db"] == tmp_path / "r.db" and served["token"] == "tok-123"
    assert served["api_versions"] == ("v1alpha3",)


def test_token_defaults_to_model_registry_token(
    served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY_TOKEN", "from-env-token")
    main(["--db", str(tmp_path / "r.db")])
    assert served["token"] == "from-env-token"
    assert served["api_versions"] == ("v1", "v1alpha3")


def test_unknown_api_version_is_a_usage_error(served: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--db", str(tmp_path / "r.db"), "--api-versions", "v1,v2"])
    assert exit_info.value.code == 2 and not served


def test_api_versions_parser_strips_blanks() -> None:
    assert registry_cli.api_versions(" v1 , v1alpha3 ") == ("v1", "v1alpha3")
    with pytest.raises(argparse.ArgumentTypeError):
        registry_cli.api_versions(",")


def test_taken_port_is_one_line_error_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = bind_socket("127.0.0.1", 0)
    port = holder.getsockname()[1]
    try:
        code = main(["--port", str(port), "--db", str(tmp_path / "r.db")])
    finally:
        holder.close()
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
