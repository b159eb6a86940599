"""Model readiness before load and the HTTP mapping of the runtime's errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from diffusers_runtime.engine import BatchingOptions, PipelineOptions, resolve_dtype
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
