"""The runtime against hostile clients, on one server for the module: one client never harms another (a
poisoned request fails alone, abandoned work stops, the model cannot be unloaded by a client, client
mistakes neither log tracebacks nor break neighbouring connections), then a hypothesis fuzz over V1, V2
JSON, V2 binary and OpenAI with default flags (no 5xx, valid requests answered 200 in time), after which
the server is still ready, serving, flat in memory and free of tracebacks.

benchmarks/runtime_fuzz.py runs the same fuzz cases by the thousand; this keeps a bounded count.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings

from tests.fixtures.runtime import RuntimeServer
from tests.integration.runtime.clients import metric_value
from tests.reliability.runtime_hostile import Case, hostile_cases, problem, send

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(240)]

MODEL = "tiny-sd"  # the runtime_server fixture's model name
FUZZ_EXAMPLES = 100
FAST = {"num_inference_steps": 2, "height": 64, "width": 64}
# Seconds of generation on this CPU: long enough to disconnect or time out in the middle.
SLOW = {"num_inference_steps": 100, "height": 64, "width": 64}


@pytest.fixture(scope="module")
def client(runtime_server: RuntimeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=runtime_server.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def rss_before(runtime_server: RuntimeServer, client: httpx.Client) -> int:
    """The server's RSS once warm (first test of the module)."""
    warm = {"instances": [{"prompt": "warm", "num_inference_steps": 2, "height": 64, "width": 64}]}
    assert client.post(f"/v1/models/{MODEL}:predict", json=warm).status_code == 200
    return psutil.Process(runtime_server.process.pid).memory_info().rss


def metrics(client: httpx.Client) -> str:
    return client.get("/metrics").text


def v1(prompt: str, **knobs: object) -> dict:
    return {"instances": [{"prompt": prompt, **FAST, **knobs}]}


def test_poisoned_v2_json_request_batched_with_valid_ones_fails_alone(
    runtime_server: RuntimeServer, client: httpx.Client, rss_before: int
) -> None:
    poisoned = (
        b'{"inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["a \\udc00 fox"]}],'
        b' "parameters": {"num_inference_steps": 2, "height": 64, "width": 64}}'
    )

    def valid_v1(i: int) -> httpx.Response:
        return client.post(f"/v1/models/{MODEL}:predict", json=v1(f"valid {i}"))

    def valid_openai() -> httpx.Response:
        body = {"prompt": "valid openai", "size": "64x64", "num_inference_steps": 2}
        return client.post("/openai/v1/images/generations", json=body)

    def poison() -> httpx.Response:
        return client.post(
            f"/v2/models/{MODEL}/infer", content=poisoned, headers={"Content-Type": "application/json"}
        )

    with ThreadPoolExecutor(4) as pool:  # the fixture batches up to 4 within 100 ms
        futures = [pool.submit(valid_v1, 0), pool.submit(poison), pool.submit(valid_v1, 1)]
        futures.append(pool.submit(valid_openai))
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200, 400, 200, 200], [a.text[:200] for a in answers]
    assert "prompt: not valid text: lone surrogate U+DC00" in answers[1].json()["error"]


def _post_and_hang_up(server: RuntimeServer, body: dict, after_s: float) -> None:
    """Send a V1 request on a raw socket and close it before the answer, as a client that gives up."""
    address = urlsplit(server.url)
    payload = json.dumps(body).encode()
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(
            f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        time.sleep(after_s)


def test_departed_clients_images_are_dropped_queued_and_stopped_running(
    runtime_server: RuntimeServer, client: httpx.Client
) -> None:
    before = metrics(client)
    with ThreadPoolExecutor(6) as pool:
        # Different seeds but one batch key: 4 run together, the others wait in the queue.
        list(pool.map(lambda i: _post_and_hang_up(runtime_server, v1(f"gone {i}", **SLOW), 1.5), range(6)))
    started = time.monotonic()
    answer = client.post(f"/v1/models/{MODEL}:predict", json=v1("next"))
    waited = time.monotonic() - started
    assert answer.status_code == 200
    after = metrics(client)
    dropped = {
        stage: metric_value(after, "diffusers_images_dropped_total", reason="cancelled", stage=stage)
        - metric_value(before, "diffusers_images_dropped_total", reason="cancelled", stage=stage)
        for stage in ("queued", "running")
    }
    assert dropped["running"] >= 1 and sum(dropped.values()) == 6, dropped
    # 6 abandoned images at 100 steps take minutes on this CPU; the next client waited a step, not them.
    assert waited < 20, f"the next request waited {waited:.1f} s behind abandoned work"


def test_request_deadline_is_503_with_retry_after_and_frees_the_engine(client: httpx.Client) -> None:
    started = time.monotonic()
    answer = client.post(
        f"/v1/models/{MODEL}:predict", json=v1("late", **SLOW), headers={"Request-Timeout": "1"}
    )
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert "deadline of 1 s exceeded" in answer.json()["error"]
    assert time.monotonic() - started < 10
    assert client.post(f"/v1/models/{MODEL}:predict", json=v1("after the deadline")).status_code == 200
    assert metric_value(metrics(client), "diffusers_images_dropped_total", reason="deadline") >= 1


def test_malformed_deadline_header_is_a_400_naming_it(client: httpx.Client) -> None:
    answer = client.post(f"/v1/models/{MODEL}:predict", json=v1("x"), headers={"Request-Timeout": "soon"})
    assert answer.status_code == 400 and "Request-Timeout" in answer.json()["error"]


def test_request_over_the_cost_bound_is_a_400_naming_the_limit(client: httpx.Client) -> None:
    body = {"prompt": "big", "n": 4, "size": "1024x1024", "num_inference_steps": 100}
    answer = client.post("/openai/v1/images/generations", json=body)
    assert answer.status_code == 400 and "--max_request_pixel_steps=" in answer.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        f"/v2/repository/models/{MODEL}/unload",
        f"/v2/repository/models/{MODEL}/load",
        "/v2/repository/index",
        f"/v1/models/{MODEL}:explain",
    ],
)
def test_repository_and_explain_routes_are_not_served(client: httpx.Client, path: str) -> None:
    assert client.post(path, json={}).status_code == 404
    assert client.get(f"/v2/models/{MODEL}/ready").status_code == 200
    assert client.post(f"/v1/models/{MODEL}:predict", json=v1("still here")).status_code == 200


def test_surrogate_in_a_body_failing_validation_is_a_400_and_keeps_the_connection(
    runtime_server: RuntimeServer,
) -> None:
    address = urlsplit(runtime_server.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    neighbour = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        neighbour.request("GET", f"/v2/models/{MODEL}/ready")
        assert neighbour.getresponse().read() and neighbour.sock is not None
        neighbour_socket = neighbour.sock
        conn.request(
            "POST",
            f"/v2/models/{MODEL}/infer",
            body=b'{"inputs": [{"name": "\\udc00", "shape": "\\ud800"}]}',
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        body = response.read()
        assert response.status == 400, body
        conn.request("GET", f"/v2/models/{MODEL}/ready")
        assert conn.getresponse().status == 200  # same keep-alive connection
        neighbour.request("GET", f"/v2/models/{MODEL}/ready")
        assert neighbour.getresponse().status == 200
        assert neighbour.sock is neighbour_socket
    finally:
        conn.close()
        neighbour.close()


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=hostile_cases(MODEL))
def test_hostile_requests_get_a_4xx_or_a_timely_200(
    client: httpx.Client, rss_before: int, case: Case
) -> None:
    outcome = send(client, case)
    assert problem(outcome) is None, problem(outcome)


def test_server_is_ready_serving_and_flat_in_memory_after_the_fuzz(
    runtime_server: RuntimeServer, client: httpx.Client, rss_before: int
) -> None:
    assert runtime_server.process.poll() is None
    assert client.get(f"/v2/models/{MODEL}/ready").status_code == 200
    good = {"instances": [{"prompt": "after", "num_inference_steps": 2, "height": 64, "width": 64}]}
    assert client.post(f"/v1/models/{MODEL}:predict", json=good, timeout=60).status_code == 200
    rss_after = psutil.Process(runtime_server.process.pid).memory_info().rss
    assert rss_after <= rss_before * 1.2, f"RSS grew from {rss_before >> 20} MiB to {rss_after >> 20} MiB"
    assert "Traceback" not in runtime_server.log()


def test_client_errors_and_readiness_polls_log_no_traceback(
    runtime_server: RuntimeServer, client: httpx.Client
) -> None:
    client.post(
        f"/v1/models/{MODEL}:predict", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    client.post("/v1/models/nobody:predict", json=v1("x"))
    client.post(f"/v2/models/{MODEL}/infer", json={"inputs": 3})
    log = runtime_server.log()
    # The fixture polled readiness while the model loaded; those 503s must not log errors either.
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert "client error: ModelNotFound" in log
