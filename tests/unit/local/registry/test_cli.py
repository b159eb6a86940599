"""`registry serve` flag handling, with the server itself patched out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from modelpipe.cli import registry as registry_cli
from modelpipe.local.registry.server import bind_socket, serve_registry


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    calls: dict[str, Any] = {}
    monkeypatch.setattr(registry_cli, "serve_registry", lambda **kwargs: calls.update(kwargs))
    monkeypatch.delenv("MODEL_REGISTRY_TOKEN", raising=False)
    return calls


def test_serve_passes_flags_to_the_server(served: dict[str, Any], tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    code = registry_cli.main(
        ["--port", "9999", "--db", db, "--token", "tok-123", "--api-versions", "v1alpha3"]
    )
    assert code == 0
    assert served["port"] == 9999 and served["host"] == "127.0.0.1"
    assert served["db"] == tmp_path / "r.db" and served["token"] == "tok-123"
    assert served["api_versions"] == ("v1alpha3",)


def test_token_defaults_to_model_registry_token(
    served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY_TOKEN", "from-env-token")
    registry_cli.main(["--db", str(tmp_path / "r.db")])
    assert served["token"] == "from-env-token"
    assert served["api_versions"] == ("v1", "v1alpha3")


def test_token_file_wins_over_the_environment(
    served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY_TOKEN", "from-env-token")
    (tmp_path / "token").write_text("from-file-token\n")
    assert registry_cli.main(["--db", str(tmp_path / "r.db"), "--token-file", str(tmp_path / "token")]) == 0
    assert served["token"] == "from-file-token"


@pytest.mark.parametrize("content", [None, "", "two\nlines\n"], ids=["missing", "empty", "two-lines"])
def test_unusable_token_file_is_one_line_error_exit_1(
    served: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    assert registry_cli.main(["--db", str(tmp_path / "r.db"), "--token-file", str(token_file)]) == 1
    assert "--token-file" in capsys.readouterr().err and not served


def test_token_and_token_file_together_is_a_usage_error(served: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        registry_cli.main(
            ["--db", str(tmp_path / "r.db"), "--token", "t", "--token-file", str(tmp_path / "token")]
        )
    assert exit_info.value.code == 2 and not served


def test_help_warns_that_the_token_flag_is_visible_to_other_users(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        registry_cli.main(["--help"])
    assert "visible to other local users" in " ".join(capsys.readouterr().out.split())


def test_unknown_api_version_is_a_usage_error(served: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        registry_cli.main(["--db", str(tmp_path / "r.db"), "--api-versions", "v1,v2"])
    assert exit_info.value.code == 2 and not served


def test_api_versions_parser_strips_blanks() -> None:
    assert registry_cli.api_versions(" v1 , v1alpha3 ") == ("v1", "v1alpha3")
    with pytest.raises(argparse.ArgumentTypeError):
        registry_cli.api_versions(",")


def test_taken_port_is_one_line_error_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = bind_socket("127.0.0.1", 0)
    port = holder.getsockname()[1]
    try:
        code = registry_cli.main(["--port", str(port), "--db", str(tmp_path / "r.db")])
    finally:
        holder.close()
    captured = capsys.readouterr()
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in captured.err
    assert "REGISTRY_URL" not in captured.out


def test_url_is_printed_once_the_port_listens(
    served: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry_cli.main(["--port", "9999", "--db", str(tmp_path / "r.db")])
    assert capsys.readouterr().out == ""
    served["on_listening"]("http://127.0.0.1:9999")
    assert capsys.readouterr().out == "REGISTRY_URL: http://127.0.0.1:9999\n"


def test_port_zero_reports_the_port_the_kernel_picked(tmp_path: Path) -> None:
    class Listening(Exception):
        pass

    def stop_at(url: str) -> None:
        raise Listening(url)

    with pytest.raises(Listening) as caught:
        serve_registry(host="127.0.0.1", port=0, db=tmp_path / "r.db", on_listening=stop_at)
    url = str(caught.value)
    assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0
