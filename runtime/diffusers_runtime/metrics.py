"""Prometheus metrics for image generation, exposed on kserve's ``/metrics`` next to its defaults."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

# kserve's default buckets stop at 10 s; a large image at many steps on a busy GPU takes minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)

REQUEST_SECONDS = Histogram(
    "diffusers_request_seconds",
    "End-to-end request latency inside the runtime (validation, queue, generation, encoding)",
    ["model_name", "protocol"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_WAIT_SECONDS = Histogram(
    "diffusers_queue_wait_seconds",
    "Time an image waited in the queue before its batch started",
    ["model_name"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "diffusers_batch_size",
    "Images per pipeline call (requested images, without invariance padding)",
    ["model_name"],
    buckets=BATCH_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "diffusers_batch_seconds",
    "Wall time of one pipeline call",
    ["model_name"],
    buckets=LATENCY_BUCKETS,
)
IMAGES_GENERATED = Counter("diffusers_images_generated", "Images generated and returned", ["model_name"])
STEP_SECONDS = Histogram(
    "diffusers_denoising_step_seconds",
    "Seconds per denoising step of a batch",
    ["model_name"],
    buckets=STEP_BUCKETS,
)
MODEL_LOAD_SECONDS = Gauge(
    "diffusers_model_load_seconds", "Seconds spent downloading and loading the pipeline", ["model_name"]
)
QUEUE_DEPTH = Gauge("diffusers_queue_depth", "Images waiting for a batch", ["model_name"])
REJECTED = Counter(
    "diffusers_requests_rejected", "Requests answered with an error, by reason", ["model_name", "reason"]
)
IMAGES_DROPPED = Counter(
    "diffusers_images_dropped",
    "Images not generated because their request was abandoned (client gone, deadline, sibling failed), "
    "by reason and by stage: dropped from the queue, or stopped at a denoising step",
    ["model_name", "reason", "stage"],
)

# GPU figures, read from torch.cuda when Prometheus scrapes (nothing is sampled in between). Memory is what
# PyTorch's caching allocator reports for this process: tensors (allocated), the cache holding them
# (reserved, what other processes cannot use) and the allocated high-water mark since start (peak).
_GPU_LABELS = ["model_name", "gpu"]
GPU_MEMORY_ALLOCATED = Gauge(
    "diffusers_gpu_memory_allocated_bytes", "GPU memory held by tensors of this process", _GPU_LABELS
)
GPU_MEMORY_RESERVED = Gauge(
    "diffusers_gpu_memory_reserved_bytes",
    "GPU memory reserved by PyTorch's caching allocator (allocated plus cached)",
    _GPU_LABELS,
)
GPU_MEMORY_PEAK = Gauge(
    "diffusers_gpu_memory_peak_bytes",
    "Highest GPU memory held by tensors since the runtime started",
    _GPU_LABELS,
)
GPU_MEMORY_TOTAL = Gauge("diffusers_gpu_memory_total_bytes", "GPU memory of the device", _GPU_LABELS)
GPU_UTILIZATION = Gauge(
    "diffusers_gpu_utilization_ratio",
    "Fraction of the last NVML sample period in which a kernel ran on the GPU (0-1; all processes)",
    _GPU_LABELS,
)


class CudaDevices(Protocol):
    """The part of ``torch.cuda`` the GPU gauges read (a fake one stands in for it in tests)."""

    def is_available(self) -> bool: ...
    def device_count(self) -> int: ...
    def memory_allocated(self, device: int) -> int: ...
    def memory_reserved(self, device: int) -> int: ...
    def max_memory_allocated(self, device: int) -> int: ...
    def get_device_properties(self, device: int) -> Any: ...
    def utilization(self, device: int) -> int: ...


def _nvml_errors() -> tuple[type[BaseException], ...]:
    """What ``torch.cuda.utilization`` raises without a usable NVML: no nvidia-ml-py, no driver, no device."""
    errors: tuple[type[BaseException], ...] = (ModuleNotFoundError, RuntimeError)
    try:
        import pynvml
    except ImportError:
        return errors
    return (*errors, pynvml.NVMLError)


def _utilization_reader(cuda: CudaDevices, device: int) -> Callable[[], float] | None:
    """A scrape-time reader of ``device``'s utilisation as a ratio, or None when NVML cannot say."""
    errors = _nvml_errors()
    try:
        cuda.utilization(device)
    except errors as err:
        logger.info("GPU %d utilisation not exported: %s", device, err)
        return None

    def read() -> float:
        try:
            return cuda.utilization(device) / 100.0
        except errors:
            # A failing scrape would drop every other series too; NaN marks this one as unknown.
            return math.nan

    return read


class RuntimeMetrics:
    """The runtime's metrics bound to one served model name."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._queue_wait = QUEUE_WAIT_SECONDS.labels(model_name=model_name)
        self._batch_size = BATCH_SIZE.labels(model_name=model_name)
        self._batch_seconds = BATCH_SECONDS.labels(model_name=model_name)
        self._images = IMAGES_GENERATED.labels(model_name=model_name)
        self._step = STEP_SECONDS.labels(model_name=model_name)
        self._queue_depth = QUEUE_DEPTH.labels(model_name=model_name)
        self._requests: dict[str, Any] = {}

    def request(self, protocol: str, seconds: float) -> None:
        child = self._requests.get(protocol)
        if child is None:  # labels() takes a lock and builds its key on every call: once per protocol
            child = self._requests[protocol] = REQUEST_SECONDS.labels(
                model_name=self.model_name, protocol=protocol
            )
        child.observe(seconds)

    def rejected(self, reason: str) -> None:
        REJECTED.labels(model_name=self.model_name, reason=reason).inc()

    def queue_wait(self, seconds: float) -> None:
        self._queue_wait.observe(seconds)

    def queue_depth(self, images: int) -> None:
        self._queue_depth.set(images)

    def batch(self, size: int, seconds: float) -> None:
        self._batch_size.observe(size)
        self._batch_seconds.observe(seconds)
        self._images.inc(size)

    def image_dropped(self, reason: str, stage: str) -> None:
        IMAGES_DROPPED.labels(model_name=self.model_name, reason=reason, stage=stage).inc()

    def step(self, seconds: float) -> None:
        self._step.observe(seconds)

    def model_loaded(self, seconds: float) -> None:
        MODEL_LOAD_SECONDS.labels(model_name=self.model_name).set(seconds)

    def watch_gpus(self, cuda: CudaDevices | None = None) -> int:
        """Export memory and utilisation of every GPU this process sees; returns how many (0 on CPU).

        Args:
            cuda: ``torch.cuda`` (the default) or a stand-in with the same functions.
        """
        if cuda is None:
            import torch

            cuda = torch.cuda
        devices: CudaDevices = cuda
        if not devices.is_available():
            return 0
        count = devices.device_count()
        for device in range(count):
            labels = {"model_name": self.model_name, "gpu": str(device)}
            GPU_MEMORY_ALLOCATED.labels(**labels).set_function(partial(devices.memory_allocated, device))
            GPU_MEMORY_RESERVED.labels(**labels).set_function(partial(devices.memory_reserved, device))
            GPU_MEMORY_PEAK.labels(**labels).set_function(partial(devices.max_memory_allocated, device))
            GPU_MEMORY_TOTAL.labels(**labels).set(devices.get_device_properties(device).total_memory)
            reader = _utilization_reader(devices, device)
            if reader is not None:
                GPU_UTILIZATION.labels(**labels).set_function(reader)
        logger.info("exporting memory and utilisation of %d GPU(s)", count)
        return count
