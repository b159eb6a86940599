"""Hypothesis fuzz of the runtime over V1, V2 JSON, V2 binary and OpenAI with default flags: no 5xx, no
crash, valid requests answered 200 in time, and the server still ready and serving afterwards.

benchmarks/runtime_fuzz.py runs the same cases by the thousand; this keeps a bounded count in `make test`.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings

from tests.fixtures.runtime import RuntimeServer
from tests.reliability.runtime_hostile import Case, hostile_cases, problem, send

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(240)]

MODEL = "tiny-sd"  # the runtime_server fixture's model name
EXAMPLES = 120


@pytest.fixture(scope="module")
def client(runtime_server: RuntimeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=runtime_server.url) as client:
        yield client


@pytest.fixture(scope="module")
def rss_before(runtime_server: RuntimeServer, client: httpx.Client) -> int:
    warm = {"instances": [{"prompt": "warm", "num_inference_steps": 2, "height": 64, "width": 64}]}
    assert client.post(f"/v1/models/{MODEL}:predict", json=warm, timeout=120).status_code == 200
    return psutil.Process(runtime_server.process.pid).memory_info().rss


@settings(
    max_examples=EXAMPLES,
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
