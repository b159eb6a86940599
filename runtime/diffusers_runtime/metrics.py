"""Prometheus metrics for image generation, exposed on kserve's ``/metrics`` next to its defaults."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

    def request(self, protocol: str, seconds: float) -> None:
        REQUEST_SECONDS.labels(model_name=self.model_name, protocol=protocol).observe(seconds)

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
