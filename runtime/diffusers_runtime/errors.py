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
