"""Progress for long transfers: a tqdm bar on a terminal, a log line every few seconds in pods."""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType

from tqdm import tqdm

LOG_EVERY_SECONDS = 5.0


class Progress:
    """Thread-safe byte counter shown as a tqdm bar (TTY) or periodic INFO logs (no TTY).

    Args:
        total: Expected bytes (0 if unknown).
        description: What is being transferred, e.g. ``upload s3://bucket/prefix``.
        logger: Where periodic lines go when stderr is not a terminal.
    """

    def __init__(self, total: int, description: str, logger: logging.Logger) -> None:
        self.total = total
        self.description = description
        self.done = 0
        self._logger = logger
        self._lock = threading.Lock()
        self._last_log = time.monotonic()
        self._bar = (
            tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)
            if sys.stderr.isatty()
            else None
        )

    def update(self, num_bytes: int) -> None:
        """Add transferred bytes (usable as a boto3 ``Callback``)."""
        with self._lock:
            self.done += num_bytes
            if self._bar is not None:
                self._bar.update(num_bytes)
            elif time.monotonic() - self._last_log >= LOG_EVERY_SECONDS:
                self._last_log = time.monotonic()
                pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
                self._logger.info("%s: %d/%d bytes%s", self.description, self.done, self.total, pct)

    __call__ = update

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
