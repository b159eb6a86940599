"""Exceptions the runtime raises; each serving error carries the HTTP status it maps to.

Bad requests raise BadRequestError, a subclass of kserve's ``InvalidInput`` (400); the other types cover what
kserve has no type for.
"""

from __future__ import annotations

from kserve.errors import InvalidInput


class BadRequestError(InvalidInput):
    """A client mistake (HTTP 400) found by our schema; the message names the field.

    A subclass of kserve's InvalidInput so kserve code treats it alike, with its own handler that logs one
    DEBUG line instead of kserve's ERROR traceback for every bad request.
    """


class RuntimeServingError(Exception):
    """Base class for errors answered with a specific HTTP status (see ``model.register_routes``)."""

    status_code = 500

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class QueueFullError(RuntimeServingError):
    """The bounded request queue has no room: HTTP 429 with ``Retry-After``."""

    status_code = 429

    def __init__(self, *, queued: int, requested: int, limit: int, retry_after: int) -> None:
        super().__init__(
            f"queue full: {queued} images waiting, this request adds {requested}, limit --max_queue={limit}; "
            f"retry after {retry_after} s",
            retry_after=retry_after,
        )
        self.queued = queued
        self.requested = requested
        self.limit = limit


class ServerBusyError(RuntimeServingError):
    """The work queued or running already costs the server-wide limit: HTTP 429 with ``Retry-After``."""

    status_code = 429

    def __init__(self, *, pending: int, requested: int, limit: int, retry_after: int) -> None:
        super().__init__(
            f"server busy: {pending} pixel-steps queued or running, this request adds {requested}, "
            f"limit --max_server_pixel_steps={limit}; retry after {retry_after} s",
            retry_after=retry_after,
        )
        self.pending = pending
        self.requested = requested
        self.limit = limit


class DeadlineExceededError(RuntimeServingError):
    """The request's deadline passed before its images were ready: HTTP 503 with ``Retry-After``.

    Its images are dropped from the queue, or their generation stops at the next denoising step.
    """

    status_code = 503

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"deadline of {seconds:g} s exceeded before the images were ready (Request-Timeout header or "
            "--request_timeout_s); retry later, with fewer steps or a longer deadline",
            retry_after=5,
        )
        self.seconds = seconds


class ClientDisconnectedError(RuntimeServingError):
    """The client closed the connection before its answer: nginx's 499, which nobody receives."""

    status_code = 499

    def __init__(self) -> None:
        super().__init__("client disconnected before the images were ready")


class GenerationError(RuntimeServingError):
    """The pipeline failed on this request alone (after its batch was retried image by image): HTTP 500."""

    status_code = 500

    def __init__(self, cause: BaseException) -> None:
        reason = str(cause).splitlines()[0] if str(cause) else ""
        super().__init__(f"generation failed: {type(cause).__name__}: {reason}".rstrip(": "))
        self.__cause__ = cause


class GenerationOutOfMemoryError(RuntimeServingError):
    """The device ran out of memory for this batch: HTTP 503; the server stays up for the next one."""

    status_code = 503

    def __init__(self, *, batch_size: int, height: int, width: int, device: str) -> None:
        super().__init__(
            f"out of memory on {device} generating {batch_size} image(s) of {width}x{height}; "
            "retry later or ask for fewer or smaller images",
            retry_after=5,
        )


class EngineStoppedError(RuntimeServingError):
    """The generation engine is shutting down and takes no more work: HTTP 503."""

    status_code = 503

    def __init__(self) -> None:
        super().__init__("the model server is shutting down", retry_after=5)


class ModelLoadError(Exception):
    """The model could not be found, downloaded or loaded; the server exits 1 with this one line."""

    def __init__(self, source: str, reason: str, fix: str = "") -> None:
        message = f"cannot load model from {source}: {reason}"
        if fix:
            message += f" (fix: {fix})"
        super().__init__(message)
        self.source = source
        self.reason = reason
