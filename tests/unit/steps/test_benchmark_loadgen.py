"""Latency statistics, the concurrency sweep and V1 response parsing (no network)."""

from __future__ import annotations

import base64
import threading
import time

import httpx
import pytest
from modelpipe.errors import BenchmarkError
from modelpipe.loadgen import (
    ImageRequest,
    LevelRun,
    RequestFailed,
    RequestOutcome,
    V1ImageClient,
    latency_stats,
    public_endpoint,
    run_level,
    summarize_level,
    summarize_sweep,
)


def test_percentiles_interpolate_between_ranks() -> None:
    stats = latency_stats([float(v) for v in range(1, 101)])
    assert (stats.p50, stats.p90, stats.p95, stats.p99) == pytest.approx((50.5, 90.1, 95.05, 99.01))
    assert (stats.mean, stats.min, stats.max) == (50.5, 1.0, 100.0)


def test_percentiles_of_one_sample_are_that_sample() -> None:
    stats = latency_stats([2.5])
    assert stats.p50 == stats.p99 == stats.min == stats.max == 2.5


def test_percentiles_ignore_order() -> None:
    assert latency_stats([3.0, 1.0, 2.0, 4.0]) == latency_stats([1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("bad", [[], [1.0, -0.1], [float("nan")], [float("inf")]])
def test_bad_latencies_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        latency_stats(bad)


def _run(
    concurrency: int,
    seconds: list[float],
    errors: dict[int, str] | None = None,
    wall: float = 2.0,
) -> LevelRun:
    errors = errors or {}
    outcomes = [RequestOutcome(s, errors.get(i)) for i, s in enumerate(seconds)]
    return LevelRun(concurrency=concurrency, outcomes=outcomes, wall_seconds=wall)


def test_level_throughput_counts_only_successes_and_step_time_uses_p50() -> None:
    level = summarize_level(_run(2, [1.0, 2.0, 3.0, 9.0], {3: "HTTP 500"}, wall=4.0), steps=4)
    assert (level.requests, level.succeeded, level.errors) == (4, 3, 1)
    assert level.p50_seconds == 2.0
    assert level.images_per_second == 0.75
    assert level.seconds_per_step == 0.5
    assert level.max_seconds == 3.0


def test_level_with_every_request_failed_has_no_percentiles() -> None:
    level = summarize_level(_run(4, [0.1, 0.1], {0: "timeout", 1: "timeout"}), steps=2)
    assert level.p50_seconds is None and level.seconds_per_step is None
    assert level.images_per_second == 0.0
    assert level.error_samples == ["timeout"]


def test_error_samples_are_distinct_and_capped() -> None:
    errors = {i: f"HTTP 50{i % 7}" for i in range(20)}
    level = summarize_level(_run(1, [0.1] * 21, errors), steps=1)
    assert level.error_samples == [
        "HTTP 500",
        "HTTP 501",
        "HTTP 502",
        "HTTP 503",
        "HTTP 504",
    ]


def test_summary_takes_latency_from_lowest_working_level_and_peak_throughput() -> None:
    failed = summarize_level(_run(1, [0.1], {0: "boom"}), steps=1)
    two = summarize_level(_run(2, [1.0, 1.0, 1.0, 1.0], wall=2.0), steps=1)
    four = summarize_level(_run(4, [2.0, 2.0, 2.0, 2.0], {0: "HTTP 429"}, wall=1.0), steps=1)
    summary = summarize_sweep([four, failed, two])
    assert (summary.latency_concurrency, summary.p50_seconds) == (2, 1.0)
    assert (summary.throughput_concurrency, summary.images_per_second) == (4, 3.0)
    assert (summary.requests, summary.errors) == (9, 2)


def test_summary_of_an_all_failed_sweep_names_the_errors() -> None:
    levels = [summarize_level(_run(c, [0.1, 0.1], {0: "HTTP 503", 1: "timeout"}), steps=1) for c in (1, 2)]
    with pytest.raises(BenchmarkError, match="all 4 timed requests failed: HTTP 503; timeout"):
        summarize_sweep(levels)


def test_run_level_keeps_exactly_concurrency_requests_in_flight() -> None:
    in_flight, peak = 0, 0
    lock = threading.Lock()

    def send(i: int) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1

    run = run_level(send, concurrency=3, requests=9)
    assert peak == 3
    assert len(run.outcomes) == 9 and all(o.error is None and o.seconds >= 0.02 for o in run.outcomes)
    assert run.wall_seconds >= 0.06


def test_run_level_records_failures_and_keeps_going() -> None:
    def send(i: int) -> None:
        if i % 2:
            raise RequestFailed(f"HTTP 500 on {i}")

    run = run_level(send, concurrency=2, requests=5)
    assert [o.error for o in run.outcomes] == [
        None,
        "HTTP 500 on 1",
        None,
        "HTTP 500 on 3",
        None,
    ]


def test_run_level_does_not_swallow_bugs() -> None:
    def send(i: int) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_level(send, concurrency=2, requests=3)


def test_public_endpoint_drops_credentials_query_and_trailing_slash() -> None:
    assert (
        public_endpoint("https://user:pw@host.example:8443/ns/isvc/?token=abc#x")
        == "https://host.example:8443/ns/isvc"
    )
    assert public_endpoint("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"


@pytest.mark.parametrize("bad", ["127.0.0.1:8080", "ftp://host", "http://"])
def test_public_endpoint_refuses_non_http_urls(bad: str) -> None:
    with pytest.raises(BenchmarkError, match="is not an http"):
        public_endpoint(bad)


def _client(handler: httpx.MockTransport) -> V1ImageClient:
    client = V1ImageClient("http://model.test", "sd", timeout_seconds=5, max_connections=1)
    client._client = httpx.Client(transport=handler)
    return client


REQUEST = ImageRequest(prompt="a cat", seed=3, steps=2, width=64, height=64, guidance_scale=7.5)


def test_predict_sends_the_contract_payload_and_decodes_the_image() -> None:
    seen = {}

    def handle(request: httpx.Request) -> httpx.Response:
        seen["url"], seen["body"] = str(request.url), request.read()
        image = {"b64": base64.b64encode(b"\x89PNG...").decode(), "format": "PNG"}
        return httpx.Response(200, json={"predictions": [{"image": image, "seed": 3}]})

    generated = _client(httpx.MockTransport(handle)).generate(REQUEST)
    assert seen["url"] == "http://model.test/v1/models/sd:predict"
    assert httpx.Response(200, content=seen["body"]).json() == {
        "instances": [
            {
                "prompt": "a cat",
                "seed": 3,
                "num_inference_steps": 2,
                "height": 64,
                "width": 64,
                "guidance_scale": 7.5,
            }
        ]
    }
    assert (generated.data, generated.format, generated.seed) == (
        b"\x89PNG...",
        "png",
        3,
    )


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (503, {"error": "queue full"}, 'HTTP 503: {"error":"queue full"}'),
        (200, {"predictions": []}, "bad V1 response"),
        (200, {"predictions": [{"image": {"b64": "not base64!"}}]}, "bad V1 response"),
        (200, {"predictions": [{"image": {"b64": ""}}]}, "empty image"),
    ],
)
def test_bad_responses_fail_the_request(status: int, body: dict, message: str) -> None:
    client = _client(httpx.MockTransport(lambda request: httpx.Response(status, json=body)))
    with pytest.raises(RequestFailed, match=message):
        client.generate(REQUEST)


def test_timeout_fails_the_request() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(RequestFailed, match="timeout: ReadTimeout"):
        _client(httpx.MockTransport(handle)).generate(REQUEST)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, {}, r"does not serve model 'sd' \(HTTP 404\)"),
        (200, {"name": "sd", "ready": False}, "is not ready"),
        (500, {"error": "x"}, "HTTP 500"),
    ],
)
def test_readiness_check_explains_what_is_wrong(status: int, body: dict, message: str) -> None:
    client = _client(httpx.MockTransport(lambda request: httpx.Response(status, json=body)))
    with pytest.raises(BenchmarkError, match=message):
        client.check_ready()


def test_unreachable_endpoint_is_a_benchmark_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(BenchmarkError, match=r"endpoint http://model\.test unreachable: ConnectError"):
        _client(httpx.MockTransport(handle)).check_ready()
