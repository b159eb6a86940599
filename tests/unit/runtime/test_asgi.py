"""The request guard: unserved routes, deadlines from flag and header, and client disconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from diffusers_runtime.asgi import (
    EXPLAIN_ROUTES,
    REPOSITORY_ROUTES,
    RequestGuard,
    RequestScope,
    current_request,
    parse_timeout,
)


class RecordingApp:
    """Reads the whole body, then waits for ``release`` before answering; records its request scope."""

    def __init__(self) -> None:
        self.scope: RequestScope | None = None
        self.release = asyncio.Event()
        self.called = False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.called = True
        self.scope = current_request()
        while (await receive()).get("more_body"):
            pass
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def http_scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or []}


async def serve(guard: RequestGuard, scope: dict, messages: asyncio.Queue[dict]) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await guard(scope, messages.get, send)
    return sent


def guard_for(app: RecordingApp, timeout_s: float | None = None) -> RequestGuard:
    return RequestGuard(app, hidden_routes=REPOSITORY_ROUTES + EXPLAIN_ROUTES, request_timeout_s=timeout_s)


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repository/models/m/unload",
        "/v2/repository/models/m/load",
        "/v2/repository/index",
        "/v1/models/m:explain",
    ],
)
def test_repository_and_explain_routes_answer_404_without_reaching_the_app(path: str) -> None:
    app = RecordingApp()
    sent = asyncio.run(serve(guard_for(app), http_scope(path), asyncio.Queue()))
    assert sent[0]["status"] == 404 and not app.called


def test_enabled_routes_reach_the_app() -> None:
    async def scenario() -> list[dict]:
        app = RecordingApp()
        app.release.set()
        messages: asyncio.Queue[dict] = asyncio.Queue()
        messages.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        guard = RequestGuard(app, hidden_routes=(), request_timeout_s=None)
        return await serve(guard, http_scope("/v2/repository/models/m/unload"), messages)

    assert asyncio.run(scenario())[0]["status"] == 200


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [(None, None, None), (None, 30.0, 30.0), ("5", None, 5.0), ("5", 2.0, 2.0), ("0.5", 30.0, 0.5)],
)
def test_the_header_may_only_shorten_the_server_deadline(
    header: str | None, default: float | None, expected: float | None
) -> None:
    assert parse_timeout(header, default) == expected


@pytest.mark.parametrize("header", ["soon", "0", "-1", "nan", "inf", "1e309", "86401"])
def test_a_malformed_deadline_header_is_refused(header: str) -> None:
    with pytest.raises(ValueError, match="Request-Timeout"):
        parse_timeout(header, None)


def test_a_malformed_deadline_header_is_a_400_before_the_app() -> None:
    app = RecordingApp()
    scope = http_scope("/v1/models/m:predict", [(b"request-timeout", b"soon")])
    sent = asyncio.run(serve(guard_for(app), scope, asyncio.Queue()))
    assert sent[0]["status"] == 400 and b"Request-Timeout" in sent[1]["body"] and not app.called


def test_a_disconnect_after_the_body_reaches_the_request_scope() -> None:
    async def scenario() -> tuple[RequestScope, list[str]]:
        app = RecordingApp()
        messages: asyncio.Queue[dict] = asyncio.Queue()
        messages.put_nowait({"type": "http.request", "body": b"{}", "more_body": False})
        task = asyncio.create_task(serve(guard_for(app, 10.0), http_scope("/v1/models/m:predict"), messages))
        while app.scope is None:
            await asyncio.sleep(0)
        notified: list[str] = []
        app.scope.on_disconnect(lambda: notified.append("gone"))
        messages.put_nowait({"type": "http.disconnect"})
        for _ in range(10):
            await asyncio.sleep(0)
        app.release.set()
        await task
        return app.scope, notified

    scope, notified = asyncio.run(scenario())
    assert scope.disconnected and notified == ["gone"]
    assert scope.timeout_s == 10.0


def test_the_end_of_a_complete_response_is_not_a_disconnect() -> None:
    async def scenario() -> RequestScope:
        app = RecordingApp()
        app.release.set()
        messages: asyncio.Queue[dict] = asyncio.Queue()
        messages.put_nowait({"type": "http.request", "body": b"{}", "more_body": False})
        messages.put_nowait({"type": "http.disconnect"})  # what a server reports once the response is sent
        await serve(guard_for(app), http_scope("/v1/models/m:predict"), messages)
        assert app.scope is not None
        return app.scope

    assert not asyncio.run(scenario()).disconnected
