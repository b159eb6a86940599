"""Load generation against a KServe V1 image endpoint: predict client, concurrency sweep, latency stats."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import numpy as np
from pydantic import SecretStr

from modelpipe.benchmark_schema import BenchmarkSummary, LatencyLevel
from modelpipe.endpoint_auth import AUTH_STATUSES, auth_failure, auth_headers
from modelpipe.errors import BenchmarkError
from modelpipe.redaction import redact

log = logging.getLogger(__name__)

PERCENTILES = (50, 90, 95, 99)
MAX_ERROR_SAMPLES = 5
_MAX_ERROR_CHARS = 200


class RequestFailed(Exception):
    """One request failed (HTTP error, timeout, bad payload); counted, never fatal to the sweep."""


@dataclass(frozen=True)
class ImageRequest:
    """One V1 instance: what the endpoint should draw."""

    prompt: str
    seed: int
    steps: int
    width: int
    height: int
    guidance_scale: float

    def instance(self) -> dict[str, Any]:
        """The V1 ``instances[0]`` object of the integration contract."""
        return {
            "prompt": self.prompt,
            "seed": self.seed,
            "num_inference_steps": self.steps,
            "height": self.height,
            "width": self.width,
            "guidance_scale": self.guidance_scale,
        }


@dataclass(frozen=True)
class GeneratedImage:
    """Image bytes as the endpoint encoded them."""

    data: bytes
    format: str
    seed: int | None


def public_endpoint(url: str) -> str:
    """``url`` without user:password, query or fragment, and without a trailing slash (safe to record).

    Raises:
        BenchmarkError: ``url`` is not an http(s) URL with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise BenchmarkError(
            f"endpoint {redact(url)!r} is not an http(s) URL",
            fix="pass e.g. --endpoint http://127.0.0.1:8080",
        )
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class V1ImageClient:
    """Thread-safe client for ``POST {endpoint}/v1/models/{name}:predict`` returning one image per request.

    Args:
        endpoint: Base URL of the inference service.
        model_name: Served model name.
        timeout_seconds: Per-request timeout.
        max_connections: Connection pool size (at least the highest concurrency).
        token: Bearer token for an endpoint deployed with ``auth=true``; None sends no Authorization.
    """

    def __init__(
        self,
        endpoint: str,
        model_name: str,
        *,
        timeout_seconds: float,
        max_connections: int,
        token: SecretStr | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.model_name = model_name
        self._model_url = f"{self.endpoint}/v1/models/{quote(model_name, safe='')}"
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 30.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers=auth_headers(token),
        )
        self._token_sent = token is not None

    def __enter__(self) -> V1ImageClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    def check_ready(self) -> None:
        """Ask ``GET /v1/models/{name}`` whether the model is loaded.

        Raises:
            BenchmarkError: The endpoint is unreachable, refuses access (401/403: no or a wrong token), does
                not serve the model, or the model is not ready.
        """
        public = public_endpoint(self.endpoint)
        try:
            response = self._client.get(self._model_url)
        except httpx.HTTPError as err:
            raise BenchmarkError(
                f"endpoint {public} unreachable: {type(err).__name__}: {redact(str(err))}",
                fix="check --endpoint and that the InferenceService is Ready",
            ) from err
        if response.status_code in AUTH_STATUSES:
            message, fix = auth_failure(
                response.status_code, f"endpoint {public}", token_sent=self._token_sent
            )
            raise BenchmarkError(message, fix=fix)
        if response.status_code == 404:
            raise BenchmarkError(
                f"endpoint {public} does not serve model {self.model_name!r} (HTTP 404)",
                fix="pass the served model name (deploy's SERVED_MODEL_NAME) as --model-name",
            )
        if response.status_code != 200:
            raise BenchmarkError(f"endpoint {public} model {self.model_name!r}: {_http_error(response)}")
        try:
            ready = response.json().get("ready")
        except (ValueError, AttributeError) as err:
            raise BenchmarkError(f"endpoint {public} answered {self._model_url} with non-JSON") from err
        if ready is not True:
            raise BenchmarkError(
                f"model {self.model_name!r} at {public} is not ready",
                fix="wait for the InferenceService to be Ready",
            )

    def generate(self, request: ImageRequest) -> GeneratedImage:
        """Send one predict request and return its image.

        Raises:
            RequestFailed: HTTP error, transport error, timeout, or a response without a decodable image.
        """
        try:
            response = self._client.post(
                f"{self._model_url}:predict", json={"instances": [request.instance()]}
            )
        except httpx.TimeoutException as err:
            raise RequestFailed(f"timeout: {type(err).__name__}") from err
        except httpx.HTTPError as err:
            raise RequestFailed(f"{type(err).__name__}: {err}") from err
        if response.status_code != 200:
            raise RequestFailed(_http_error(response))
        return _parse_prediction(response)


def _http_error(response: httpx.Response) -> str:
    body = " ".join(response.text.split())[:_MAX_ERROR_CHARS]
    return f"HTTP {response.status_code}: {body}" if body else f"HTTP {response.status_code}"


def _parse_prediction(response: httpx.Response) -> GeneratedImage:
    try:
        prediction = response.json()["predictions"][0]
        image = prediction["image"]
        data = base64.b64decode(image["b64"], validate=True)
        fmt = str(image.get("format") or "png").lower()
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as err:
        raise RequestFailed(
            f"bad V1 response (expected predictions[0].image.b64): {err!r}"[:_MAX_ERROR_CHARS]
        ) from err
    if not data:
        raise RequestFailed("bad V1 response: empty image")
    seed = prediction.get("seed")
    return GeneratedImage(data=data, format=fmt, seed=seed if isinstance(seed, int) else None)


@dataclass(frozen=True)
class RequestOutcome:
    """Latency of one timed request, and its error when it failed."""

    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class LevelRun:
    """Raw outcomes of one concurrency level."""

    concurrency: int
    outcomes: list[RequestOutcome]
    wall_seconds: float


@dataclass(frozen=True)
class LatencyStats:
    """Summary statistics of successful request latencies (seconds)."""

    p50: float
    p90: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float


def latency_stats(latencies: Sequence[float]) -> LatencyStats:
    """Percentiles (linear interpolation between closest ranks, as numpy's default), mean, min and max.

    Raises:
        ValueError: ``latencies`` is empty or holds a negative or non-finite value.
    """
    values = np.asarray(latencies, dtype=float)
    if values.size == 0:
        raise ValueError("no latencies to summarise")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("latencies must be finite and >= 0")
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    return LatencyStats(
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        mean=float(values.mean()),
        min=float(values.min()),
        max=float(values.max()),
    )


def run_level(send: Callable[[int], object], *, concurrency: int, requests: int) -> LevelRun:
    """Send ``requests`` calls ``send(i)`` from ``concurrency`` threads, timing each; failures are recorded.

    ``send`` raises ``RequestFailed`` for a failed request; any other exception is a bug and propagates.
    """
    if concurrency < 1 or requests < 0:
        raise ValueError(f"concurrency must be >= 1 and requests >= 0, got {concurrency}, {requests}")
    outcomes: list[RequestOutcome | None] = [None] * requests
    counter = iter(range(requests))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            started = time.perf_counter()
            try:
                send(index)
            except RequestFailed as err:
                outcomes[index] = RequestOutcome(time.perf_counter() - started, redact(str(err)))
            else:
                outcomes[index] = RequestOutcome(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"loadgen-c{concurrency}") as pool:
        futures = [pool.submit(worker) for _ in range(min(concurrency, max(requests, 1)))]
        for future in futures:
            future.result()
    wall = time.perf_counter() - started
    return LevelRun(
        concurrency=concurrency, outcomes=[o for o in outcomes if o is not None], wall_seconds=wall
    )


def summarize_level(run: LevelRun, *, steps: int) -> LatencyLevel:
    """Turn a level's raw outcomes into the schema's LatencyLevel (percentiles None when all failed)."""
    ok = [o.seconds for o in run.outcomes if o.error is None]
    errors = [o.error for o in run.outcomes if o.error is not None]
    samples = list(dict.fromkeys(errors))[:MAX_ERROR_SAMPLES]
    stats = latency_stats(ok) if ok else None
    return LatencyLevel(
        concurrency=run.concurrency,
        requests=len(run.outcomes),
        succeeded=len(ok),
        errors=len(errors),
        error_samples=samples,
        p50_seconds=stats.p50 if stats else None,
        p90_seconds=stats.p90 if stats else None,
        p95_seconds=stats.p95 if stats else None,
        p99_seconds=stats.p99 if stats else None,
        mean_seconds=stats.mean if stats else None,
        min_seconds=stats.min if stats else None,
        max_seconds=stats.max if stats else None,
        wall_seconds=run.wall_seconds,
        images_per_second=len(ok) / run.wall_seconds if run.wall_seconds > 0 else 0.0,
        seconds_per_step=stats.p50 / steps if stats else None,
    )


def summarize_sweep(levels: Sequence[LatencyLevel]) -> BenchmarkSummary:
    """Headline numbers: single-stream latency from the lowest level with successes, peak throughput.

    Raises:
        BenchmarkError: No timed request succeeded at any level (the first errors are named).
    """
    working = sorted((level for level in levels if level.succeeded), key=lambda level: level.concurrency)
    if not working:
        samples = "; ".join(list(dict.fromkeys(s for level in levels for s in level.error_samples))[:3])
        raise BenchmarkError(
            f"all {sum(level.requests for level in levels)} timed requests failed: {samples or 'no detail'}",
            fix="check the runtime's logs and that --steps/--size are within its limits",
        )
    single = working[0]
    peak = max(working, key=lambda level: level.images_per_second)
    p50, p95 = single.p50_seconds, single.p95_seconds
    if p50 is None or p95 is None:  # a level that succeeded always has latencies
        raise BenchmarkError(f"concurrency {single.concurrency} succeeded without latencies")
    return BenchmarkSummary(
        p50_seconds=p50,
        p95_seconds=p95,
        latency_concurrency=single.concurrency,
        images_per_second=peak.images_per_second,
        throughput_concurrency=peak.concurrency,
        requests=sum(level.requests for level in levels),
        errors=sum(level.errors for level in levels),
    )
