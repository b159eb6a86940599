"""Model readiness before load, encoding chained onto generation, and the HTTP mapping of errors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path

import pytest
import torch
from diffusers_runtime.engine import (
    BatchingOptions,
    GeneratedImage,
    PipelineOptions,
    load_pipeline,
    resolve_dtype,
)
from diffusers_runtime.errors import (
    GenerationOutOfMemoryError,
    ModelLoadError,
    QueueFullError,
)
from diffusers_runtime.model import DiffusersModel, serving_error_handler
from diffusers_runtime.schema import Limits


def test_model_is_not_ready_before_load() -> None:
    model = DiffusersModel(
        "unit-model",
        model_dir=Path("/nowhere"),
        pipeline_options=PipelineOptions(),
        batching=BatchingOptions(),
        limits=Limits(),
    )
    assert asyncio.run(model.healthy()) is False
    # kserve's ModelServer starts a model "engine" when this attribute is truthy.
    assert model.engine is False


def unloaded_model() -> DiffusersModel:
    return DiffusersModel(
        "unit-encode",
        model_dir=Path("/nowhere"),
        pipeline_options=PipelineOptions(),
        batching=BatchingOptions(),
        limits=Limits(),
    )


def test_images_settled_on_the_event_loop_thread_are_encoded_on_the_encoder_pool() -> None:
    from PIL import Image

    model = unloaded_model()
    generated: concurrent.futures.Future[list[GeneratedImage]] = concurrent.futures.Future()
    encoded = model._encode_when_generated(generated, ["PNG", "JPEG"], False)
    assert not encoded.done()
    threads: list[str] = []
    encoded.add_done_callback(lambda _: threads.append(threading.current_thread().name))
    images = [GeneratedImage(Image.new("RGB", (8, 8), "red"), seed=s) for s in (1, 2)]
    generated.set_result(images)
    (first, png), (second, jpeg) = encoded.result(10)
    assert (first.seed, second.seed) == (1, 2)
    assert png.startswith(b"\x89PNG") and jpeg.startswith(b"\xff\xd8")
    assert threads[0].startswith("encode")
    model.stop()


def test_images_delivered_by_an_engine_worker_are_encoded_on_that_worker_as_base64_text() -> None:
    import base64

    from PIL import Image

    model = unloaded_model()
    generated: concurrent.futures.Future[list[GeneratedImage]] = concurrent.futures.Future()
    encoded = model._encode_when_generated(generated, ["PNG"], True)
    threads: list[str] = []
    encoded.add_done_callback(lambda _: threads.append(threading.current_thread().name))
    image = GeneratedImage(Image.new("RGB", (8, 8), "red"), seed=4)
    worker = threading.Thread(target=generated.set_result, args=([image],), name="diffusers-engine-1")
    worker.start()
    worker.join(10)
    ((_, text),) = encoded.result(10)
    assert isinstance(text, str) and base64.b64decode(text).startswith(b"\x89PNG")
    assert threads == ["diffusers-engine-1"]
    model.stop()


def test_generation_error_reaches_the_request() -> None:
    model = unloaded_model()
    generated: concurrent.futures.Future[list[GeneratedImage]] = concurrent.futures.Future()
    encoded = model._encode_when_generated(generated, ["PNG"], False)
    generated.set_exception(GenerationOutOfMemoryError(batch_size=1, height=8, width=8, device="cpu"))
    with pytest.raises(GenerationOutOfMemoryError):
        encoded.result(10)


def test_cancelled_request_cancels_its_generation() -> None:
    model = unloaded_model()
    generated: concurrent.futures.Future[list[GeneratedImage]] = concurrent.futures.Future()
    encoded = model._encode_when_generated(generated, ["PNG"], False)
    assert encoded.cancel()
    assert generated.cancelled()  # the engine drops images whose future is done


def test_requests_still_settle_after_the_encoder_pool_is_shut_down() -> None:
    from PIL import Image

    model = unloaded_model()
    generated: concurrent.futures.Future[list[GeneratedImage]] = concurrent.futures.Future()
    encoded = model._encode_when_generated(generated, ["PNG"], False)
    model.stop()
    generated.set_result([GeneratedImage(Image.new("RGB", (8, 8)), seed=3)])
    assert encoded.result(10)[0][1].startswith(b"\x89PNG")


def test_queue_full_is_429_with_retry_after() -> None:
    error = QueueFullError(queued=8, requested=1, limit=8, retry_after=3)
    response = asyncio.run(serving_error_handler(None, error))  # type: ignore[arg-type]
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert b"--max_queue=8" in response.body


def test_out_of_memory_is_503() -> None:
    error = GenerationOutOfMemoryError(batch_size=4, height=1024, width=1024, device="cuda:0")
    response = asyncio.run(serving_error_handler(None, error))  # type: ignore[arg-type]
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert b"out of memory" in response.body


def test_readiness_turns_true_only_after_load(tiny_sd_dir: Path) -> None:
    model = DiffusersModel(
        "unit-load",
        model_dir=tiny_sd_dir,
        pipeline_options=PipelineOptions(device="cpu"),
        batching=BatchingOptions(),
        limits=Limits(),
    )
    assert asyncio.run(model.healthy()) is False
    model.load()
    try:
        assert asyncio.run(model.healthy()) is True
        assert model.capabilities is not None
        assert (
            model.capabilities.default_height,
            model.capabilities.default_width,
        ) == (64, 64)
        assert "euler" in model.capabilities.scheduler_names
    finally:
        model.stop()
    assert asyncio.run(model.healthy()) is False


def test_float16_on_cpu_is_a_load_error() -> None:
    with pytest.raises(ModelLoadError, match="float16"):
        resolve_dtype("float16", torch.device("cpu"))


def test_loading_a_folder_that_is_not_a_pipeline_names_the_missing_index(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model_index\.json does not exist"):
        load_pipeline(tmp_path, PipelineOptions(device="cpu"))
