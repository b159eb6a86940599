"""evaluate: an unknown lm-eval task is refused by the real task registry before any request is sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from modelpipe.errors import UnknownTaskError
from modelpipe.eval_tools import EvalTools
from modelpipe.steps.evaluate import evaluate_model

pytestmark = pytest.mark.integration


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def _record(self) -> None:
        type(self).seen.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.end_headers()

    do_GET = do_POST = _record

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 that records every request it gets."""
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_unknown_task_is_refused_before_any_request(
    eval_tools: EvalTools, recorder: tuple[str, list[str]], tmp_path: Path
) -> None:
    endpoint, seen = recorder
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UnknownTaskError, match="arc_eazy") as err:
        evaluate_model(
            endpoint=endpoint,
            model_name="tiny-llm",
            tokenizer_dir=tokenizer,
            tasks=["modelpipe_science_mc", "arc_eazy"],
            eval_dir=tmp_path / "eval",
            tools=eval_tools,
            environ={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        )
    assert "modelpipe_science_mc" not in err.value.message  # the known task is not named as unknown
    assert seen == []
    assert not (tmp_path / "eval" / "results.json").exists()
