"""Dynamic batching: concurrent requests share pipeline calls and every image stays byte-identical."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fixtures.runtime import RuntimeServer

from .clients import FAST, metric_value, v1_image_bytes, v1_predict

pytestmark = pytest.mark.integration

INSTANCES = [
    {"prompt": p, "seed": 100 + i, **FAST} for i, p in enumerate(["a cat", "a dog", "a red car", "sea"])
]


def _batch_stats(server: RuntimeServer) -> tuple[float, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    labels = {"model_name": server.model_name}
    return metric_value(text, "diffusers_batch_size_count", **labels), metric_value(
        text, "diffusers_batch_size_sum", **labels
    )


def test_concurrent_requests_are_batched_and_byte_identical_to_alone(
    runtime_server: RuntimeServer,
) -> None:
    alone = [v1_image_bytes(v1_predict(runtime_server, [instance]))[0] for instance in INSTANCES]
    calls_before, images_before = _batch_stats(runtime_server)
    with ThreadPoolExecutor(len(INSTANCES)) as pool:
        batched = list(pool.map(lambda i: v1_image_bytes(v1_predict(runtime_server, [i]))[0], INSTANCES))
    calls_after, images_after = _batch_stats(runtime_server)
    assert images_after - images_before == len(INSTANCES)
    assert calls_after - calls_before < len(INSTANCES), "no two requests shared a pipeline call"
    assert batched == alone


def test_instances_of_one_request_run_as_one_call_with_alone_images(
    runtime_server: RuntimeServer,
) -> None:
    alone = [v1_image_bytes(v1_predict(runtime_server, [instance]))[0] for instance in INSTANCES]
    calls_before, _ = _batch_stats(runtime_server)
    together = v1_image_bytes(v1_predict(runtime_server, INSTANCES))
    calls_after, _ = _batch_stats(runtime_server)
    assert calls_after - calls_before == 1
    assert together == alone


def test_requests_with_different_settings_are_not_mixed(
    runtime_server: RuntimeServer,
) -> None:
    one_step = {**INSTANCES[0], "num_inference_steps": 1}
    alone = [v1_image_bytes(v1_predict(runtime_server, [i]))[0] for i in (INSTANCES[0], one_step)]
    with ThreadPoolExecutor(2) as pool:
        mixed = list(
            pool.map(
                lambda i: v1_image_bytes(v1_predict(runtime_server, [i]))[0],
                [INSTANCES[0], one_step],
            )
        )
    assert mixed == alone
    assert mixed[0] != mixed[1]


def test_concurrent_requests_with_different_schedulers_do_not_leak_state(
    runtime_server: RuntimeServer,
) -> None:
    requests = [
        {**INSTANCES[i], "scheduler": s} for i, s in enumerate(["euler", "default", "euler_a", "ddim"])
    ]
    alone = [v1_image_bytes(v1_predict(runtime_server, [r]))[0] for r in requests]
    with ThreadPoolExecutor(8) as pool:
        together = list(
            pool.map(
                lambda r: v1_image_bytes(v1_predict(runtime_server, [r]))[0],
                requests * 2,
            )
        )
    assert together == alone * 2
