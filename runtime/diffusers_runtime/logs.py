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
