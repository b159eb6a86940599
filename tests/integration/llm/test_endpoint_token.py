"""The LLM steps against an endpoint that wants a bearer token (OpenShift AI auth=true): a loopback fake."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from modelpipe.errors import EvaluationError
from modelpipe.eval_tools import EvalTools
from modelpipe.steps.benchmark_llm import benchmark_llm
from modelpipe.steps.evaluate import check_served
from pydantic import SecretStr

pytestmark = pytest.mark.integration

TOKEN = "endpoint-token-s3cr3t-9012"
MODEL = "tiny-llm"


@dataclass
class AuthServer:
    """Answers 401 without `Bearer TOKEN`; with it, lists the model and fails everything else (500)."""

    url: str = ""
    seen: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
def auth_server() -> Iterator[AuthServer]:
    state = AuthServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            authorization = self.headers.get("Authorization")
            state.seen.append((self.path, authorization))
            if authorization != f"Bearer {TOKEN}":
                status, body = 401, b"Unauthorized"
            elif self.path == "/v1/models":
                status, body = 200, json.dumps({"data": [{"id": MODEL}]}).encode()
            else:
                status, body = 500, b"not a real server"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_model_list_is_asked_with_the_token(auth_server: AuthServer) -> None:
    check_served(f"{auth_server.url}/v1", MODEL, token=SecretStr(TOKEN))
    assert auth_server.seen == [("/v1/models", f"Bearer {TOKEN}")]


@pytest.mark.parametrize(("token", "says"), [(None, "none was sent"), ("wrong-token-1234", "refused")])
def test_model_list_refused_names_the_401_and_the_fix(
    auth_server: AuthServer, token: str | None, says: str
) -> None:
    with pytest.raises(EvaluationError, match="HTTP 401 Unauthorized") as info:
        check_served(f"{auth_server.url}/v1", MODEL, token=SecretStr(token) if token else None)
    assert says in info.value.message and "ENDPOINT_TOKEN" in info.value.message + (info.value.fix or "")


def test_guidellm_sends_the_token_and_writes_it_nowhere(
    auth_server: AuthServer, eval_tools: EvalTools, tiny_llm_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(EvaluationError, match="guidellm synchronous failed") as info:
        benchmark_llm(
            endpoint=auth_server.url,
            model_name=MODEL,
            tokenizer_dir=tiny_llm_dir,
            benchmark_dir=tmp_path / "bench",
            tools=eval_tools,
            environ={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            concurrency=(1,),
            requests=1,
            timeout_seconds=300,
            endpoint_token=SecretStr(TOKEN),
        )
    guidellm_calls = [auth for path, auth in auth_server.seen if path != "/v1/models"]
    assert guidellm_calls and set(guidellm_calls) == {f"Bearer {TOKEN}"}, auth_server.seen
    assert "s3cr3t" not in str(info.value)
    for path in (tmp_path / "bench").rglob("*"):
        if path.is_file():
            assert "s3cr3t" not in path.read_text(encoding="utf-8", errors="replace"), path
