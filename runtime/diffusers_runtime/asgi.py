"""ASGI middleware around kserve's app: unserved routes answer 404, and every request gets a deadline and a
disconnect signal that the model hands to the engine."""

from __future__ import annotations

import asyncio
import contextvars
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TIMEOUT_HEADER = "request-timeout"
# A header value beyond a day is a typo, not a deadline.
MAX_TIMEOUT_S = 86400.0
# kserve's model repository extension (load/unload/index): anyone reaching the port could unload the model
# and leave the pod unready with liveness still green.
REPOSITORY_ROUTES = (re.compile(r"/v2/repository(/.*)?"),)
# Explanations are not implemented (kserve answers 501 for every model here).
EXPLAIN_ROUTES = (re.compile(r"/v1/models/[^/]+:explain"), re.compile(r"/v2/models/.+/explain"))

_CURRENT: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "diffusers_request", default=None
)


class RequestScope:
    """One HTTP request as the model sees it: its deadline and whether its client went away."""

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.disconnected = False
        self._callbacks: list[Callable[[], Any]] = []

    def remaining_s(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def on_disconnect(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback`` (on the event loop) when the client disconnects; returns an unsubscribe."""
        if self.disconnected:
            callback()
            return lambda: None
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def disconnect(self) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


def current_request() -> RequestScope | None:
    """The request being served by this task, or None outside the middleware (unit tests)."""
    return _CURRENT.get()


def parse_timeout(value: str | None, default_s: float | None) -> float | None:
    """The deadline of a request: its ``Request-Timeout`` header (seconds), capped by the server default.

    Raises:
        ValueError: The header is not a positive number of seconds up to a day.
    """
    if value is None:
        return default_s
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_TIMEOUT_S:
        raise ValueError(f"Request-Timeout: expected seconds > 0 and <= {MAX_TIMEOUT_S:g}, got {value!r}")
    return seconds if default_s is None else min(seconds, default_s)


class RequestGuard:
    """Pure ASGI middleware (no extra task per request, unlike Starlette's BaseHTTPMiddleware).

    Once the app has read the whole body, a watcher awaits the next ASGI message: ``http.disconnect``
    before the response is complete means the client left, and the request's scope tells the model, which
    abandons the request's images in the engine.
    """

    def __init__(
        self, app: ASGIApp, *, hidden_routes: Sequence[re.Pattern[str]], request_timeout_s: float | None
    ) -> None:
        self.app = app
        self.hidden_routes = tuple(hidden_routes)
        self.request_timeout_s = request_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if any(pattern.fullmatch(path) for pattern in self.hidden_routes):
            await _answer(send, 404, "Not Found")
            return
        header = _header(scope, TIMEOUT_HEADER)
        try:
            timeout_s = parse_timeout(header, self.request_timeout_s)
        except ValueError as err:
            await _answer(send, 400, str(err))
            return
        request = RequestScope(timeout_s)
        token = _CURRENT.set(request)
        watcher: asyncio.Future[Message] | None = None
        complete = False

        async def watch() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and not complete:
                request.disconnect()
            return message

        async def guarded_receive() -> Message:
            nonlocal watcher
            if watcher is not None:
                return await asyncio.shield(watcher)
            message = await receive()
            if message["type"] == "http.disconnect":
                if not complete:
                    request.disconnect()
            elif not message.get("more_body", False):
                watcher = asyncio.ensure_future(watch())
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True  # before sending: the server then reports the end as a disconnect
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        finally:
            _CURRENT.reset(token)
            if watcher is not None and not watcher.done():
                watcher.cancel()


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


async def _answer(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
