"""Diffusers pipeline loading and the dynamic-batching generation engine (no HTTP or kserve types here)."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import copy
import gc
import inspect
import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import (
    BadRequestError,
    DeadlineExceededError,
    EngineStoppedError,
    GenerationError,
    GenerationOutOfMemoryError,
    ModelLoadError,
    QueueFullError,
    ServerBusyError,
)
from .families import DEFAULT_SCHEDULER, SCHEDULERS, FamilyRules, ServingDefaults, rules_for
from .metrics import RuntimeMetrics
from .storage import check_model_dir

logger = logging.getLogger(__name__)

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True)
class PipelineOptions:
    """How to place the pipeline: device and dtype ("auto" resolves at load), compile, CPU offload."""

    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    cpu_offload: str = "none"
    # Weight variant to load (e.g. fp16); None takes the one manifest.json records, "" forces the default.
    variant: str | None = None
    serving_defaults: ServingDefaults = field(default_factory=ServingDefaults)


@dataclass(frozen=True)
class BatchingOptions:
    """Dynamic batching: images per call, how long the oldest waits for company, queue bound in images,
    and the server-wide bound on the pixel-steps queued or running (None: no bound)."""

    max_batch_size: int = 4
    max_batch_delay_s: float = 0.01
    max_queue: int = 64
    batch_invariant: bool = True
    max_pending_pixel_steps: int | None = None

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_queue < 1 or self.max_batch_delay_s < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1 and max_batch_delay_s >= 0")
        if self.max_pending_pixel_steps is not None and self.max_pending_pixel_steps < 1:
            raise ValueError("max_pending_pixel_steps must be >= 1")


@dataclass(frozen=True)
class BatchKey:
    """Settings that must be equal for images to share one pipeline call."""

    height: int
    width: int
    num_inference_steps: int
    guidance_scale: float
    scheduler: str = DEFAULT_SCHEDULER
    has_negative_prompt: bool = False

    @property
    def pixel_steps(self) -> int:
        """The cost of one image: width x height x steps (what the cost limits count)."""
        return self.height * self.width * self.num_inference_steps


@dataclass(frozen=True)
class ImageRequest:
    """One image to generate: its prompt, its own seed and the batch-relevant settings."""

    prompt: str
    seed: int
    key: BatchKey
    negative_prompt: str | None = None


@dataclass(frozen=True)
class GeneratedImage:
    image: Any  # PIL.Image.Image
    seed: int


@dataclass
class LoadedPipeline:
    """A diffusers text-to-image pipeline on its device, plus what requests may ask of it."""

    pipeline: Any
    device: torch.device
    dtype: torch.dtype
    default_height: int
    default_width: int
    scheduler_names: tuple[str, ...]
    supports_negative_prompt: bool
    supports_step_callback: bool
    rules: FamilyRules | None = None
    _scheduler_templates: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def class_name(self) -> str:
        return type(self.pipeline).__name__

    def pipeline_for(self, scheduler: str) -> Any:
        """A pipeline sharing this one's modules with a fresh scheduler instance.

        Schedulers keep per-call state (timesteps, step index), so every pipeline call gets its own copy of a
        template built once per name. A shallow copy of the pipeline takes microseconds where
        ``from_pipe`` takes tens of milliseconds; the call's own attributes (guidance scale, timestep count)
        then land on the copy too.
        """
        template = self._scheduler_templates.get(scheduler)
        if template is None:
            base = self.pipeline.scheduler
            if scheduler == DEFAULT_SCHEDULER:
                scheduler_cls = type(base)
            else:
                candidates = [type(base), *base.compatibles]
                scheduler_cls = next(c for c in candidates if c.__name__ == SCHEDULERS[scheduler])
            template = self._scheduler_templates[scheduler] = scheduler_cls.from_config(base.config)
        pipe = copy.copy(self.pipeline)
        pipe.scheduler = copy.deepcopy(template)
        return pipe


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda", "CUDA is not available in this container", "use --device cpu")
    return torch.device(requested)


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if requested == "float16" and device.type == "cpu":
        raise ModelLoadError("--dtype float16", "float16 is not supported on CPU", "use float32 or bfloat16")
    return DTYPES[requested]


def load_pipeline(model_dir: Path, options: PipelineOptions) -> LoadedPipeline:
    """Load a diffusers text-to-image pipeline from a local folder onto its device.

    Args:
        model_dir: Folder holding ``model_index.json`` and the component subfolders.
        options: Device, dtype, compile and offload choices.

    Returns:
        The pipeline with the defaults and choices requests are validated against.

    Raises:
        ModelLoadError: The folder is not a loadable text-to-image pipeline, or the device/dtype is unusable.
    """
    from diffusers import AutoPipelineForText2Image

    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    check_model_dir(model_dir, str(model_dir))
    recorded = read_manifest(model_dir)
    variant = recorded.get("variant") if options.variant is None else options.variant
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(
            str(model_dir), dtype=dtype, local_files_only=True, variant=variant or None
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if variant:
            reason += f" (weight variant {variant!r})"
        raise ModelLoadError(str(model_dir), reason) from err
    _place(pipe, device, options)
    pipe.set_progress_bar_config(disable=True)
    rules = rules_for(
        pipe,
        model_name_hint=f"{recorded.get('source', '')} {model_dir.name}",
        explicit=options.serving_defaults,
    )
    call_params = inspect.signature(pipe.__call__).parameters
    loaded = LoadedPipeline(
        pipeline=pipe,
        device=device,
        dtype=dtype,
        default_height=rules.height,
        default_width=rules.width,
        scheduler_names=rules.scheduler_names,
        supports_negative_prompt=rules.negative_prompt is None,
        supports_step_callback="callback_on_step_end" in call_params,
        rules=rules,
    )
    height, width = rules.height, rules.width
    logger.info(
        "loaded %s on %s (%s), default size %dx%d, schedulers %s",
        loaded.class_name,
        device,
        str(dtype).removeprefix("torch."),
        width,
        height,
        ",".join(loaded.scheduler_names),
    )
    logger.info(
        "serving defaults of this %s model (%s): %d steps, guidance %g, %dx%d",
        rules.family,
        rules.defaults_source,
        rules.steps,
        rules.guidance_scale,
        rules.width,
        rules.height,
    )
    return loaded


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """What modelpipe's manifest.json records (source, variant), or {} for folders without one."""
    try:
        content = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(str(model_dir), f"manifest.json is unreadable: {err}") from None
    return content if isinstance(content, dict) else {}


def _denoiser(pipe: Any) -> Any:
    return getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)


def _place(pipe: Any, device: torch.device, options: PipelineOptions) -> None:
    """Move to the device (or offload only when asked), channels-last and optional compile on GPU."""
    if options.cpu_offload != "none" and device.type != "cuda":
        raise ModelLoadError("--cpu_offload", "CPU offload needs --device cuda", "use --cpu_offload none")
    if options.cpu_offload == "model":
        pipe.enable_model_cpu_offload()
    elif options.cpu_offload == "sequential":
        pipe.enable_sequential_cpu_offload()
    else:
        pipe.to(device)
    denoiser = _denoiser(pipe)
    if device.type == "cuda" and denoiser is not None:
        # diffusers uses PyTorch SDPA attention by default on torch 2; channels-last helps its convolutions.
        denoiser.to(memory_format=torch.channels_last)
        if options.compile:
            compiled = torch.compile(denoiser, mode="max-autotune-no-cudagraphs")
            if getattr(pipe, "unet", None) is not None:
                pipe.unet = compiled
            else:
                pipe.transformer = compiled


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA OOM, CPU allocator failures and Python MemoryError."""
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@dataclass
class _Job:
    future: concurrent.futures.Future[list[GeneratedImage]]
    results: list[GeneratedImage | None]
    remaining: int


@dataclass
class _Pending:
    request: ImageRequest
    job: _Job
    index: int
    enqueued: float


class _BatchAbandoned(Exception):
    """Raised from the step callback: every request of the running batch is gone (client or deadline)."""


def abandon_reason(future: concurrent.futures.Future[Any]) -> str:
    """Why a request's future settled before its images: ``cancelled`` (client gone), ``deadline``, or
    ``failed`` (another image of the same request failed)."""
    if future.cancelled():
        return "cancelled"
    return "deadline" if isinstance(future.exception(), DeadlineExceededError) else "failed"


class Engine:
    """Runs one pipeline call at a time, batching compatible images from concurrent requests.

    Several worker threads take turns: the one holding the turn takes a batch and calls the pipeline,
    then hands the turn on and delivers that batch's images itself, so the done-callbacks of a request's
    future (the model encodes the images there) run on the thread that generated them, while the next
    batch already runs on another. Delivering from the thread that ran the call saves each request one
    hand-off to another thread, and nothing queued waits for an encoding.

    Every image is generated from its own ``torch.Generator`` seeded with its seed. With ``batch_invariant``
    every call is padded to ``max_batch_size`` images, so every call has the same tensor shapes: BLAS and
    convolution kernels then compute each image identically wherever it sits, and an image is byte-identical
    alone or batched. Without it, a lone image runs alone (less work) and may differ in the last bits.
    """

    def __init__(
        self,
        loaded: LoadedPipeline,
        batching: BatchingOptions,
        metrics: RuntimeMetrics,
        *,
        workers: int = 2,
    ) -> None:
        """``workers`` threads take turns at the pipeline; up to ``workers - 1`` deliver (and encode)
        finished images while the next batch runs."""
        self.loaded = loaded
        self.batching = batching
        self._metrics = metrics
        self._queue: collections.deque[_Pending] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._pending_pixel_steps = 0  # queued and running images, for the server-wide limit
        self._batch_seconds = 1.0  # moving average, for Retry-After
        # One pipeline call at a time: the worker holding the turn takes a batch and runs it.
        self._turn = threading.Lock()
        # Two workers may deliver images of one request (split over batches) at the same time.
        self._delivery_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"diffusers-engine-{i}", daemon=True)
            for i in range(max(1, workers))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the running batch, fail queued work with EngineStoppedError, join the worker."""
        with self._cond:
            self._stopping = True
            pending, self._queue = list(self._queue), collections.deque()
            self._pending_pixel_steps -= sum(item.request.key.pixel_steps for item in pending)
            self._cond.notify_all()
        for item in pending:
            _fail(item.job, EngineStoppedError())
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def queued_images(self) -> int:
        return len(self._queue)

    @property
    def pending_pixel_steps(self) -> int:
        """Pixel-steps of the images queued or running."""
        return self._pending_pixel_steps

    def submit(self, images: Sequence[ImageRequest]) -> concurrent.futures.Future[list[GeneratedImage]]:
        """Queue images of one request; the future resolves with them in order, or with the error of the
        request's own images.

        Settling the future early (cancel it when the client goes away, or fail it with
        DeadlineExceededError) abandons the request: its queued images are dropped and a running batch
        made only of abandoned requests stops at its next denoising step.

        Raises:
            QueueFullError: Adding these images would exceed ``max_queue``.
            ServerBusyError: Their pixel-steps would exceed ``max_pending_pixel_steps``.
            EngineStoppedError: The engine is shutting down.
        """
        if not images:
            raise ValueError("submit needs at least one image")
        job = _Job(concurrent.futures.Future(), [None] * len(images), len(images))
        cost = sum(request.key.pixel_steps for request in images)
        with self._cond:
            if self._stopping:
                raise EngineStoppedError()
            self._drop_abandoned()
            queued = len(self._queue)
            batches_ahead = queued / self.batching.max_batch_size + 1
            retry = max(1, math.ceil(batches_ahead * self._batch_seconds))
            if queued + len(images) > self.batching.max_queue:
                raise QueueFullError(
                    queued=queued, requested=len(images), limit=self.batching.max_queue, retry_after=retry
                )
            limit = self.batching.max_pending_pixel_steps
            if limit is not None and self._pending_pixel_steps + cost > limit:
                raise ServerBusyError(
                    pending=self._pending_pixel_steps, requested=cost, limit=limit, retry_after=retry
                )
            self._pending_pixel_steps += cost
            now = time.monotonic()
            self._queue.extend(_Pending(request, job, i, now) for i, request in enumerate(images))
            self._metrics.queue_depth(len(self._queue))
            self._cond.notify()
        return job.future

    def _run(self) -> None:
        while True:
            deliveries: list[tuple[_Pending, GeneratedImage]] = []
            with self._turn:
                batch = self._take_batch()
                if batch is None:
                    return
                self._generate(batch, deliveries)
            # The turn is free: the next batch starts on another worker while this one delivers.
            for item, image in deliveries:
                self._deliver(item, image)

    def _take_batch(self) -> list[_Pending] | None:
        """Wait for work; return up to max_batch_size images compatible with the oldest one.

        A partial batch waits at most max_batch_delay_s for company, counted from when both the worker was
        free and the oldest image was there. Counting from the oldest arrival alone would start a batch at
        once with the stragglers that queued during the previous call, just before the clients served by
        that call send their next requests: batches of 6 and 2 instead of 8, each costing a full call.
        """
        max_batch_size, max_batch_delay_s = self.batching.max_batch_size, self.batching.max_batch_delay_s
        free_since = time.monotonic()
        with self._cond:
            while True:
                if self._stopping:
                    return None
                self._drop_abandoned()
                if not self._queue:
                    self._metrics.queue_depth(0)
                    self._cond.wait()
                    continue
                head = self._queue[0]
                picked = []
                for item in self._queue:
                    if item.request.key == head.request.key and not item.job.future.done():
                        picked.append(item)
                        if len(picked) == max_batch_size:
                            break
                wait = max(head.enqueued, free_since) + max_batch_delay_s - time.monotonic()
                if len(picked) == max_batch_size or wait <= 0:
                    break
                self._cond.wait(wait)
            chosen = {id(item) for item in picked}
            self._queue = collections.deque(item for item in self._queue if id(item) not in chosen)
            self._metrics.queue_depth(len(self._queue))
            return picked

    def _drop_abandoned(self) -> None:
        """Remove the queued images of requests already settled (client gone, deadline, sibling failed)."""
        if not any(item.job.future.done() for item in self._queue):
            return
        kept: collections.deque[_Pending] = collections.deque()
        for item in self._queue:
            if item.job.future.done():
                self._pending_pixel_steps -= item.request.key.pixel_steps
                self._metrics.image_dropped(abandon_reason(item.job.future), "queued")
            else:
                kept.append(item)
        self._queue = kept
        self._metrics.queue_depth(len(kept))

    def _generate(self, batch: list[_Pending], deliveries: list[tuple[_Pending, GeneratedImage]]) -> None:
        started = time.monotonic()
        for item in batch:
            self._metrics.queue_wait(started - item.enqueued)
        try:
            self._generate_batch(batch, started, deliveries)
        finally:
            with self._cond:
                self._pending_pixel_steps -= sum(item.request.key.pixel_steps for item in batch)

    def _generate_batch(
        self, batch: list[_Pending], started: float, deliveries: list[tuple[_Pending, GeneratedImage]]
    ) -> None:
        requests = [item.request for item in batch]
        try:
            images = self._call_pipeline(requests, batch)
        except _BatchAbandoned:
            for item in batch:
                self._metrics.image_dropped(abandon_reason(item.job.future), "running")
            return
        # The worker thread must survive anything a batch raises; the error goes to the requests' futures.
        except Exception as err:
            if is_out_of_memory(err):
                error = self._out_of_memory(err, requests)
                for item in batch:
                    _fail(item.job, error)
            elif len({id(item.job) for item in batch}) > 1:
                # One request's input can fail the whole call (a prompt the tokenizer rejects): run each
                # image alone so only the guilty request fails.
                logger.warning("a batch of %d failed (%s); retrying its images one by one", len(batch), err)
                for item in batch:
                    self._generate_alone(item, deliveries)
            else:
                error = self._request_error(err, requests)
                for item in batch:
                    _fail(item.job, error)
            return
        seconds = time.monotonic() - started
        self._batch_seconds = 0.7 * self._batch_seconds + 0.3 * seconds
        self._metrics.batch(len(batch), seconds)
        deliveries.extend(
            (item, GeneratedImage(image=image, seed=item.request.seed))
            for item, image in zip(batch, images, strict=False)
        )

    def _deliver(self, item: _Pending, image: GeneratedImage) -> None:
        """Record one image; the last of its request settles the future, whose callbacks run here."""
        job = item.job
        with self._delivery_lock:
            job.results[item.index] = image
            job.remaining -= 1
            complete = job.remaining == 0
        if complete and not job.future.done():
            # The client may have gone away (future cancelled) since the check.
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                job.future.set_result([r for r in job.results if r is not None])

    def _generate_alone(self, item: _Pending, deliveries: list[tuple[_Pending, GeneratedImage]]) -> None:
        if item.job.future.done():
            return
        try:
            images = self._call_pipeline([item.request], [item])
        except _BatchAbandoned:
            self._metrics.image_dropped(abandon_reason(item.job.future), "running")
            return
        except Exception as err:
            _fail(item.job, self._request_error(err, [item.request]))
            return
        self._metrics.batch(1, 0.0)
        deliveries.append((item, GeneratedImage(image=images[0], seed=item.request.seed)))

    def _request_error(self, err: Exception, requests: list[ImageRequest]) -> Exception:
        """The error a request gets when its own images failed: the pipeline's 400, OOM's 503, else 500."""
        if isinstance(err, BadRequestError):
            logger.debug("the pipeline refused a request of %d image(s): %s", len(requests), err)
            return err
        if is_out_of_memory(err):
            return self._out_of_memory(err, requests)
        logger.error("generation failed for a request of %d image(s)", len(requests), exc_info=err)
        return GenerationError(err)

    def _out_of_memory(self, err: Exception, requests: list[ImageRequest]) -> Exception:
        key = requests[0].key
        logger.warning("out of memory: batch of %d at %dx%d: %s", len(requests), key.width, key.height, err)
        gc.collect()
        if self.loaded.device.type == "cuda":
            torch.cuda.empty_cache()
        return GenerationOutOfMemoryError(
            batch_size=len(requests), height=key.height, width=key.width, device=str(self.loaded.device)
        )

    def _call_pipeline(self, requests: list[ImageRequest], batch: Sequence[_Pending] = ()) -> list[Any]:
        key = requests[0].key
        padded = list(requests)
        if self.batching.batch_invariant:
            padded += [requests[0]] * (self.batching.max_batch_size - len(padded))
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in padded],
            "num_inference_steps": key.num_inference_steps,
            "guidance_scale": key.guidance_scale,
            "height": key.height,
            "width": key.width,
            # CPU generators: the same seed gives the same starting noise on any device.
            "generator": [torch.Generator(device="cpu").manual_seed(r.seed) for r in padded],
            "output_type": "pil",
        }
        if key.has_negative_prompt:
            kwargs["negative_prompt"] = [r.negative_prompt or "" for r in padded]
        if self.loaded.supports_step_callback:
            kwargs["callback_on_step_end"] = _StepWatch(self._metrics, [item.job.future for item in batch])
        if self.loaded.rules is not None:
            kwargs.update(self.loaded.rules.call_kwargs)
        pipe = self.loaded.pipeline_for(key.scheduler)
        try:
            with torch.inference_mode():
                output = pipe(**kwargs)
        except ValueError as err:
            # The request was validated against the family's rules; a ValueError the pipeline still raises
            # is about the values it was given (sizes, steps, texts), so it is the client's.
            raise request_error(err) from err
        return list(output.images[: len(requests)])


_REQUEST_FIELDS = ("negative_prompt", "num_inference_steps", "guidance_scale", "height", "width", "prompt")


def request_error(err: ValueError) -> BadRequestError:
    """A pipeline's ValueError as a 400 naming the request field its message is about."""
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    lowered = message.lower()
    named = next((name for name in _REQUEST_FIELDS if name in lowered), None)
    if named is None and ("steps" in lowered or "timesteps" in lowered):
        named = "num_inference_steps"
    return BadRequestError(f"{named or 'request'}: the pipeline refused the request values: {message}")


class _StepWatch:
    """``callback_on_step_end``: observes the seconds per denoising step, and stops the call when every
    request in it has been abandoned (raising skips the remaining steps and the VAE decode, where
    diffusers' own ``interrupt`` flag would still decode)."""

    def __init__(self, metrics: RuntimeMetrics, futures: Sequence[concurrent.futures.Future[Any]]) -> None:
        self._metrics = metrics
        self._futures = futures
        self._last = time.monotonic()

    def __call__(
        self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        now = time.monotonic()
        self._metrics.step(now - self._last)
        self._last = now
        if self._futures and all(future.done() for future in self._futures):
            raise _BatchAbandoned()
        return callback_kwargs


def _fail(job: _Job, error: BaseException) -> None:
    if not job.future.done():
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            job.future.set_exception(error)
