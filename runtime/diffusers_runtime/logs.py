"""Log output on background threads: the event loop never waits for stdout or stderr.

A container's stdout is a pipe the node's log agent drains; when it falls behind, a write blocks, and a
handler writing from the event loop would stall every request and health check with it. Each configured
logger's handlers are moved behind a queue: the loop only enqueues the record, a listener thread formats
and writes it (uvicorn's access line, written on every response, costs ~0.15 ms on the loop otherwise).
"""

from __future__ import annotations

import atexit
import logging
import queue
from logging.handlers import QueueHandler, QueueListener

from kserve.errors import (
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotReady,
    UnsupportedProtocol,
)
from kserve.logging import KSERVE_LOGGER_NAME

_listeners: list[QueueListener] = []


class _RecordQueueHandler(QueueHandler):
    """Queue the record as it is: formatters on the far side (uvicorn's access formatter) read its args."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def log_like_kserve(name: str) -> None:
    """Send logger ``name`` through kserve's handlers at kserve's level.

    kserve's logging config covers only its own and uvicorn's loggers; without this, our INFO lines
    (what was loaded, on which device) would reach nobody.
    """
    source = logging.getLogger(KSERVE_LOGGER_NAME)
    if not source.handlers:
        return
    target = logging.getLogger(name)
    for handler in source.handlers:
        target.addHandler(handler)
    target.setLevel(source.level)
    target.propagate = False


def write_logs_in_background() -> None:
    """Put every logger's handlers behind a queue drained by a listener thread (idempotent).

    Call after logging is configured; records keep their logger's handlers, formatters and levels.
    """
    if _listeners:
        return
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        handlers = [h for h in logger.handlers if not isinstance(h, QueueHandler)]
        if not handlers:
            continue
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        for handler in handlers:
            logger.removeHandler(handler)
        logger.addHandler(_RecordQueueHandler(records))
        listener = QueueListener(records, *handlers, respect_handler_level=True)
        listener.start()
        _listeners.append(listener)
    atexit.register(flush_logs)


def flush_logs() -> None:
    """Write out every queued record and stop the listeners (before exiting, also via os._exit)."""
    while _listeners:
        _listeners.pop().stop()


# Raised by kserve for a client's mistake or a probe's question; its handlers log each at ERROR with a
# traceback (2 KB per malformed body, one per readiness poll while the model loads).
_CLIENT_ERRORS = (InvalidInput, ModelNotFound, NotImplementedError, UnsupportedProtocol)
_NOT_READY = (ModelNotReady, ServerNotReady)


class _ClientErrorFilter(logging.Filter):
    """Rewrite kserve's traceback record for a client error as one line (INFO; not-ready answers DEBUG)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, (*_CLIENT_ERRORS, *_NOT_READY)):
            return True
        level = logging.DEBUG if isinstance(error, _NOT_READY) else logging.INFO
        if not self._logger.isEnabledFor(level):
            return False
        text = str(error).encode("ascii", "backslashreplace").decode("ascii").replace("\n", " ")
        record.msg, record.args = "client error: %s: %s", (type(error).__name__, text[:500])
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.levelno, record.levelname = level, logging.getLevelName(level)
        return True


def quiet_client_errors() -> None:
    """Log kserve's client-error answers as one line each instead of a traceback (idempotent)."""
    logger = logging.getLogger(KSERVE_LOGGER_NAME)
    if not any(isinstance(f, _ClientErrorFilter) for f in logger.filters):
        logger.addFilter(_ClientErrorFilter(logger))
