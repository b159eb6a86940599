"""The kserve.Model serving a diffusers pipeline: one short adapter per protocol (V1, V2, OpenAI images)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import io
import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InferenceError, InvalidInput, ModelNotFound, ModelNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import to_http_parameters

from .asgi import EXPLAIN_ROUTES, REPOSITORY_ROUTES, RequestGuard, current_request
from .engine import BatchingOptions, Engine, GeneratedImage, PipelineOptions, load_pipeline
from .errors import (
    BadRequestError,
    ClientDisconnectedError,
    DeadlineExceededError,
    GenerationOutOfMemoryError,
    QueueFullError,
    RuntimeServingError,
    ServerBusyError,
)
from .metrics import RuntimeMetrics
from .schema import (
    V2_OUTPUTS,
    Capabilities,
    ImageTask,
    Limits,
    V2Tensor,
    parse_openai,
    parse_v1,
    parse_v2,
)

logger = logging.getLogger(__name__)

OPENAI_IMAGES_ROUTE = "/openai/v1/images/generations"
OPENAI_MODELS_ROUTE = "/openai/v1/models"
V2_METADATA_ROUTE = "/v2/models/{model_name}"
_REJECT_REASONS = {
    InvalidInput: "invalid_input",
    QueueFullError: "queue_full",
    ServerBusyError: "server_busy",
    GenerationOutOfMemoryError: "oom",
    DeadlineExceededError: "deadline",
    ClientDisconnectedError: "disconnected",
}


class DiffusersModel(Model):
    """Text-to-image model served over KServe V1, V2 and an OpenAI-style images route."""

    def __init__(
        self,
        name: str,
        *,
        model_dir: Path,
        pipeline_options: PipelineOptions,
        batching: BatchingOptions,
        limits: Limits,
        download_seconds: float = 0.0,
    ) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.pipeline_options = pipeline_options
        self.batching = batching
        self.limits = limits
        self.metrics = RuntimeMetrics(name)
        self.capabilities: Capabilities | None = None
        # Not `self.engine`: kserve's ModelServer treats a truthy `engine` attribute as its own engine hook.
        self.generator: Engine | None = None
        # Images are encoded on the engine worker that generated them, up to this many at once while the
        # next batch runs; the pool only serves a request whose images were ready before it was watched.
        self._encoders = min(4, os.cpu_count() or 1)
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self._download_seconds = download_seconds

    def load(self) -> bool:
        """Load the pipeline and start the batching worker; readiness turns true only at the end.

        Raises:
            ModelLoadError: The folder is not a loadable pipeline or the device/dtype is unusable.
        """
        started = time.monotonic()
        loaded = load_pipeline(self.model_dir, self.pipeline_options)
        rules = loaded.rules
        self.capabilities = Capabilities(
            default_height=loaded.default_height,
            default_width=loaded.default_width,
            scheduler_names=loaded.scheduler_names,
            supports_negative_prompt=loaded.supports_negative_prompt,
            default_steps=min(30, self.limits.max_steps) if rules is None else rules.steps,
            default_guidance=7.5 if rules is None else rules.guidance_scale,
            rules=rules,
        )
        self.generator = Engine(loaded, self.batching, self.metrics, workers=1 + self._encoders)
        self.generator.start()
        if loaded.device.type == "cuda":
            self.metrics.watch_gpus()
        self.metrics.model_loaded(self._download_seconds + time.monotonic() - started)
        # The pipeline's modules and tensors live as long as the server: move them out of the collector's
        # reach so its full collections stop rescanning them while requests are served.
        gc.collect()
        gc.freeze()
        self.ready = True
        return self.ready

    def stop(self) -> None:
        self.ready = False
        if self.generator is not None:
            self.generator.stop()
        self._encoder.shutdown(wait=False)

    async def predict(
        self, payload: Any, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        if isinstance(payload, InferRequest):
            return await self._infer_v2(payload)
        if isinstance(payload, (bytes, str)):
            # kserve hands over the raw body when the Content-Type is not JSON (curl -d sends form type).
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError as err:
                raise BadRequestError(f"body: not valid JSON: {err}") from None
        return await self._predict_v1(payload)

    async def _predict_v1(self, body: Any) -> dict[str, Any]:
        with self._observe("v1"):
            tasks = parse_v1(body, self.limits, self._caps())
            images = await self._generate(tasks, as_text=True)
            return {
                "predictions": [
                    {
                        "image": {"b64": data, "format": task.output_format},
                        "seed": g.seed,
                    }
                    for task, (g, data) in zip(tasks, images, strict=True)
                ]
            }

    async def _infer_v2(self, request: InferRequest) -> InferResponse:
        with self._observe("v2"):
            image_as_binary = _image_as_binary(request)
            parameters = request.parameters
            if parameters is not None and request.from_grpc:
                parameters = to_http_parameters(parameters)
            tensors = [V2Tensor(i.name, i.datatype, i.shape, _tensor_data(i)) for i in request.inputs]
            tasks = parse_v2(tensors, parameters, self.limits, self._caps())
            images = await self._generate(tasks, as_text=not image_as_binary)
            count = len(images)
            image_data = [data for _, data in images]
            outputs = [
                InferOutput(
                    "image", [count], "BYTES", data=image_data, parameters={"format": tasks[0].output_format}
                ),
                InferOutput("seed", [count], "INT64", data=[g.seed for g, _ in images]),
            ]
            # A V2 request may omit "id"; kserve fails on a None response id.
            return InferResponse(
                response_id=request.id or str(uuid.uuid4()),
                model_name=self.name,
                infer_outputs=outputs,
                use_binary_outputs=request.use_binary_outputs,
                requested_outputs=request.request_outputs,
            )

    async def openai_images(self, request: Request) -> dict[str, Any]:
        """``POST /openai/v1/images/generations`` -> ``{"created", "data": [{"b64_json", "seed"}]}``."""
        if not self.ready:
            raise ModelNotReady(self.name)
        with self._observe("openai"):
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError as err:
                raise BadRequestError(f"body: not valid JSON: {err}") from None
            parsed, tasks = parse_openai(body, self.limits, self._caps())
            if parsed.model is not None and parsed.model != self.name:
                raise ModelNotFound(parsed.model)
            images = await self._generate(tasks, as_text=True)
            return {
                "created": int(time.time()),
                "data": [{"b64_json": data, "seed": g.seed} for g, data in images],
            }

    def get_input_types(self) -> list[dict[str, Any]]:
        return [
            {"name": "prompt", "datatype": "BYTES", "shape": [-1]},
            {"name": "negative_prompt", "datatype": "BYTES", "shape": [-1]},
            {"name": "num_inference_steps", "datatype": "INT32", "shape": [1]},
            {"name": "guidance_scale", "datatype": "FP32", "shape": [1]},
            {"name": "height", "datatype": "INT32", "shape": [1]},
            {"name": "width", "datatype": "INT32", "shape": [1]},
            {"name": "seed", "datatype": "INT64", "shape": [-1]},
            {"name": "scheduler", "datatype": "BYTES", "shape": [1]},
            {"name": "output_format", "datatype": "BYTES", "shape": [1]},
        ]

    def serving_metadata(self) -> dict[str, Any]:
        """The model's serving defaults and family rules (V2 metadata ``parameters``, OpenAI models route)."""
        caps = self._caps()
        if caps.rules is None:
            return {}
        return {
            **caps.rules.metadata(),
            "max_steps": self.limits.max_steps,
            "max_pixels": self.limits.max_pixels,
        }

    async def v2_metadata(self, model_name: str) -> dict[str, Any]:
        """``GET /v2/models/{name}``: kserve's metadata plus ``parameters`` with the serving defaults.

        kserve's own handler validates its answer through a model without ``parameters`` and drops them.
        """
        if model_name != self.name:
            raise ModelNotFound(model_name)
        return {
            "name": self.name,
            "platform": "",
            "inputs": self.get_input_types(),
            "outputs": self.get_output_types(),
            "parameters": self.serving_metadata() if self.ready else {},
        }

    async def openai_model(self, model_name: str | None = None) -> dict[str, Any]:
        """``GET /openai/v1/models[/{name}]``: the OpenAI model object plus the serving defaults."""
        if model_name is not None and model_name != self.name:
            raise ModelNotFound(model_name)
        entry = {"id": self.name, "object": "model", "created": 0, "owned_by": "diffusers-runtime"}
        if self.ready:
            entry["serving_defaults"] = self.serving_metadata()
        if model_name is not None:
            return entry
        return {"object": "list", "data": [entry]}

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": "image", "datatype": "BYTES", "shape": [-1]},
            {"name": "seed", "datatype": "INT64", "shape": [-1]},
        ]

    def _caps(self) -> Capabilities:
        if self.capabilities is None:
            raise ModelNotReady(self.name)
        return self.capabilities

    async def _generate(
        self, tasks: list[ImageTask], *, as_text: bool
    ) -> list[tuple[GeneratedImage, bytes | str]]:
        """Queue the images and await them generated and encoded, all off the event loop.

        ``as_text`` returns each image base64-encoded as text (JSON answers), else its raw bytes; base64
        of a large image takes milliseconds, so it happens off the loop with the image encoding.

        When the client disconnects or the request's deadline passes, the request is abandoned: the engine
        drops its queued images and stops a batch of abandoned requests at its next denoising step.

        Raises:
            ClientDisconnectedError: The client went away (nobody reads the answer).
            DeadlineExceededError: The deadline passed first.
        """
        if self.generator is None:
            raise ModelNotReady(self.name)
        request = current_request()
        if request is not None and request.disconnected:
            raise ClientDisconnectedError()
        generated = self.generator.submit([task.request for task in tasks])
        formats = [task.output_format for task in tasks]
        encoded = self._encode_when_generated(generated, formats, as_text)
        if request is None:
            return await asyncio.wrap_future(encoded)
        timer = None
        remaining = request.remaining_s()
        if remaining is not None and request.timeout_s is not None:
            error = DeadlineExceededError(request.timeout_s)
            timer = asyncio.get_running_loop().call_later(remaining, _settle_with, generated, error)
        unsubscribe = request.on_disconnect(encoded.cancel)
        try:
            return await asyncio.wrap_future(encoded)
        except asyncio.CancelledError:
            if request.disconnected:
                raise ClientDisconnectedError() from None
            raise
        finally:
            unsubscribe()
            if timer is not None:
                timer.cancel()

    def _encode_when_generated(
        self, generated: Future[list[GeneratedImage]], formats: list[str], as_text: bool
    ) -> Future[list[tuple[GeneratedImage, bytes | str]]]:
        """Chain encoding onto generation, without a trip through the event loop.

        The engine worker that generated the images encodes them as it delivers them (the next batch runs
        on another worker meanwhile): no thread hand-off between generation and encoding. Only a
        callback run on the event loop (the images were ready before the callback was added) goes to the
        encoder pool, so the loop never encodes. Cancelling the returned future (the client went away)
        cancels the generation too, so the engine drops images still queued.
        """
        encoded: Future[list[tuple[GeneratedImage, bytes | str]]] = Future()
        loop_thread = threading.get_ident()

        def encode() -> None:
            if not encoded.set_running_or_notify_cancel():
                return
            try:
                images = generated.result()
                encoded.set_result(
                    [(g, _encoded(g.image, f, as_text)) for g, f in zip(images, formats, strict=True)]
                )
            except BaseException as err:  # every outcome belongs to the waiting request
                encoded.set_exception(err)

        def start_encoding(done: Future[list[GeneratedImage]]) -> None:
            if threading.get_ident() != loop_thread or done.cancelled() or done.exception() is not None:
                encode()  # on the engine worker, or only settling the request with its error
                return
            try:
                self._encoder.submit(encode)
            except RuntimeError:  # the pool is shut down (server stopping): settle the request here
                encode()

        encoded.add_done_callback(lambda done: generated.cancel() if done.cancelled() else None)
        generated.add_done_callback(start_encoding)
        return encoded

    @contextlib.contextmanager
    def _observe(self, protocol: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except tuple(_REJECT_REASONS) as err:
            self.metrics.rejected(next(r for t, r in _REJECT_REASONS.items() if isinstance(err, t)))
            raise
        self.metrics.request(protocol, time.monotonic() - started)


def _settle_with(future: Future[Any], error: BaseException) -> None:
    """Fail a request's future unless the engine settled it first."""
    with contextlib.suppress(Exception):
        if not future.done():
            future.set_exception(error)


def _image_as_binary(request: InferRequest) -> bool:
    """Whether the image goes out as raw bytes (binary data extension) rather than base64 text.

    kserve encodes the seed output as asked by itself; only our image bytes need the choice made here.

    Raises:
        BadRequestError: ``outputs`` names an output this model does not have.
    """
    binary = bool(request.use_binary_outputs)
    for output in request.request_outputs or []:
        if output.name not in V2_OUTPUTS:
            raise BadRequestError(
                f"outputs.{output.name}: unknown output (available: {', '.join(V2_OUTPUTS)})"
            )
        if output.name == "image":
            binary = bool(output.binary_data)
    return binary


def _tensor_data(infer_input: Any) -> Any:
    # gRPC raw contents live in _raw_data; REST JSON BYTES must be read from .data (as_numpy crashes on them).
    if getattr(infer_input, "_raw_data", None) is not None:
        return infer_input.as_numpy()
    return infer_input.data


def _encoded(image: Any, output_format: str, as_text: bool) -> bytes | str:
    data = encode_image(image, output_format)
    return base64.b64encode(data).decode("ascii") if as_text else data


def encode_image(image: Any, output_format: str) -> bytes:
    """PIL image -> PNG (fast zlib level), JPEG or WebP bytes."""
    buffer = io.BytesIO()
    if output_format == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
    elif output_format == "WEBP":
        image.save(buffer, format="WEBP", quality=90)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """``{"error": message}``, with any lone surrogate a client sent escaped so the body can be encoded."""
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse(status_code=status, content={"error": text}, headers=headers)


async def bad_request_handler(_: Request, exc: Exception) -> JSONResponse:
    """400 for our schema errors; one INFO line, not kserve's ERROR traceback per bad request."""
    logger.info("client error 400: %s", _one_line(str(exc)))
    return error_response(400, str(exc))


async def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """400 naming the fields FastAPI's body model refused (a V2 body that is not an inference request).

    FastAPI's own handler echoes the input in a 422 and fails to encode it when it holds a lone surrogate,
    which turned a client mistake into a 500 and a dropped keep-alive connection.
    """
    if not isinstance(exc, RequestValidationError):  # registered for RequestValidationError only
        raise TypeError(f"validation_error_handler got {type(exc).__name__}")
    problems = []
    for error in exc.errors()[:3]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        problems.append(f"{location}: {error.get('msg', 'invalid')}")
    message = "; ".join(problems) or "body: invalid request"
    logger.info("client error 400: %s", _one_line(message))
    return error_response(400, message)


async def serving_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """Answer our serving errors with their status; 429/503 carry Retry-After."""
    if not isinstance(exc, RuntimeServingError):  # registered for RuntimeServingError only
        raise TypeError(f"serving_error_handler got {type(exc).__name__}")
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    if exc.status_code >= 500:
        logger.warning("%s", exc.message)
    return error_response(exc.status_code, exc.message, headers)


def _one_line(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\n", " ")[:500]


class RuntimeDataPlane(DataPlane):
    """kserve's DataPlane, except that a malformed binary V2 body is a 400, not a 500.

    kserve decodes binary-extension bodies with plain indexing and UTF-8 decoding, so a missing key, a
    truncated tensor or non-UTF-8 BYTES surface as KeyError/struct.error/InferenceError (HTTP 500).
    """

    def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> InferRequest:
        try:
            return super().decode_inference_request(body, headers, model_name)
        except InvalidInput:
            raise
        except (KeyError, TypeError, ValueError, IndexError, struct.error, InferenceError) as err:
            detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise BadRequestError(f"body: malformed V2 binary request: {detail}") from None


def register_routes(
    app: FastAPI,
    model: DiffusersModel,
    *,
    enable_repository_routes: bool = False,
    enable_explain_route: bool = False,
    request_timeout_s: float | None = None,
) -> None:
    """Add the OpenAI images route, the request guard and the status mapping of our errors to kserve's app.

    Args:
        app: kserve's FastAPI app, before the server starts.
        model: The served model.
        enable_repository_routes: Serve kserve's ``/v2/repository`` load/unload routes (404 otherwise).
        enable_explain_route: Serve kserve's ``:explain`` route (404 otherwise; it answers 501 here).
        request_timeout_s: Deadline of every request; a ``Request-Timeout`` header may only shorten it.
    """
    hidden = (() if enable_repository_routes else REPOSITORY_ROUTES) + (
        () if enable_explain_route else EXPLAIN_ROUTES
    )
    app.add_middleware(RequestGuard, hidden_routes=hidden, request_timeout_s=request_timeout_s)
    app.add_api_route(OPENAI_IMAGES_ROUTE, model.openai_images, methods=["POST"], response_model=None)
    app.add_api_route(OPENAI_MODELS_ROUTE, model.openai_model, methods=["GET"], response_model=None)
    app.add_api_route(
        OPENAI_MODELS_ROUTE + "/{model_name}", model.openai_model, methods=["GET"], response_model=None
    )
    # Ahead of kserve's own GET /v2/models/{model_name}, which would drop the parameters.
    app.add_api_route(V2_METADATA_ROUTE, model.v2_metadata, methods=["GET"], response_model=None)
    app.router.routes.insert(0, app.router.routes.pop())
    app.add_exception_handler(RuntimeServingError, serving_error_handler)
    app.add_exception_handler(BadRequestError, bad_request_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
