"""While a long generation runs: probes answer fast, the bounded queue answers 429, metrics are there."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.fixtures.runtime import RuntimeServer

from .clients import metric_value, v1_predict

pytestmark = pytest.mark.integration

# Long enough to outlast what the tests do meanwhile (about a second) on an idle machine.
LONG = {
    "prompt": "a long one",
    "seed": 1,
    "height": 64,
    "width": 64,
    "num_inference_steps": 100,
}
LONGER = {**LONG, "height": 128, "width": 128}
SHORT = {
    "prompt": "a short one",
    "seed": 2,
    "height": 64,
    "width": 64,
    "num_inference_steps": 1,
}


def _in_background(
    call: Callable[[], httpx.Response],
) -> tuple[threading.Thread, list[httpx.Response]]:
    results: list[httpx.Response] = []

    def run() -> None:
        with contextlib.suppress(httpx.TransportError):  # the test killed the server under this request
            results.append(call())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


def _wait_until_generation_starts(server: RuntimeServer) -> None:
    """Wait until the worker has taken the long request into a pipeline call (its queue wait is observed)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = httpx.get(f"{server.url}/metrics", timeout=5).text
        if metric_value(text, "diffusers_queue_wait_seconds_count", model_name=server.model_name) >= 1:
            return
        time.sleep(0.05)
    raise TimeoutError("the long request never started")


def test_probes_and_metrics_answer_fast_during_a_long_generation(
    runtime_server_factory: Callable[..., RuntimeServer],
) -> None:
    server = runtime_server_factory(max_batch_size=1)
    worker, results = _in_background(lambda: v1_predict(server, [LONGER]))
    _wait_until_generation_starts(server)
    probe_seconds = []
    for url in [
        server.ready_url,
        f"{server.url}/v2/health/live",
        f"{server.url}/metrics",
    ] * 5:
        started = time.monotonic()
        assert httpx.get(url, timeout=10).status_code == 200
        probe_seconds.append(time.monotonic() - started)
        time.sleep(0.05)
    assert worker.is_alive(), f"the generation ended before the probes ({results}); make LONGER longer"
    server.process.kill()  # no need to wait for the rest of the generation
    # A generation on the event loop would hold every probe for seconds.
    assert max(probe_seconds) < 1.0, probe_seconds


def test_full_queue_answers_429_with_retry_after_and_recovers(
    runtime_server_factory: Callable[..., RuntimeServer],
) -> None:
    server = runtime_server_factory(
        max_batch_size=1, max_queue=1, max_images_per_request=1, max_batch_delay_ms=0
    )
    running, running_result = _in_background(lambda: v1_predict(server, [LONG]))
    _wait_until_generation_starts(server)
    queued, queued_result = _in_background(lambda: v1_predict(server, [SHORT]))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        depth = metric_value(httpx.get(f"{server.url}/metrics").text, "diffusers_queue_depth")
        if depth >= 1:
            break
        time.sleep(0.05)
    rejected = v1_predict(server, [SHORT])
    assert rejected.status_code == 429, rejected.text
    assert int(rejected.headers["retry-after"]) >= 1
    assert "--max_queue" in rejected.json()["error"]
    running.join(timeout=120)
    queued.join(timeout=120)
    assert running_result[0].status_code == 200 and queued_result[0].status_code == 200
    assert v1_predict(server, [SHORT]).status_code == 200
    text = httpx.get(f"{server.url}/metrics").text
    assert metric_value(text, "diffusers_requests_rejected_total", reason="queue_full") == 1


def test_metrics_cover_requests_queue_batches_steps_and_load(
    runtime_server: RuntimeServer,
) -> None:
    assert v1_predict(runtime_server, [SHORT]).status_code == 200
    text = httpx.get(f"{runtime_server.url}/metrics", timeout=10).text
    labels = {"model_name": runtime_server.model_name}
    assert metric_value(text, "diffusers_request_seconds_count", protocol="v1", **labels) >= 1
    assert metric_value(text, "diffusers_queue_wait_seconds_count", **labels) >= 1
    assert metric_value(text, "diffusers_batch_size_count", **labels) >= 1
    assert metric_value(text, "diffusers_images_generated_total", **labels) >= 1
    assert metric_value(text, "diffusers_denoising_step_seconds_count", **labels) >= 1
    assert metric_value(text, "diffusers_model_load_seconds", **labels) > 0
    assert "diffusers_queue_depth{" in text
    # Buckets reach minutes, not kserve's 10 s.
    assert 'diffusers_request_seconds_bucket{le="600.0"' in text
