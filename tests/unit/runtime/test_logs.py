"""Log output behind queues: nothing lost, formats kept, our own lines visible (run in a fresh process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import logging, sys, threading
    from kserve.logging import configure_logging
    from diffusers_runtime.logs import flush_logs, log_like_kserve, write_logs_in_background

    configure_logging()
    log_like_kserve("diffusers_runtime")
    write_logs_in_background()
    main_thread = threading.get_ident()
    writers = []
    original_emit = logging.StreamHandler.emit
    def recording_emit(self, record):
        writers.append(threading.get_ident())
        original_emit(self, record)
    logging.StreamHandler.emit = recording_emit

    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/v1/models/m:predict", "1.1", 200
    )
    logging.getLogger("diffusers_runtime.engine").info("loaded %s on %s", "StableDiffusionPipeline", "cpu")
    for i in range(200):
        logging.getLogger("kserve").warning("line %d", i)
    flush_logs()
    print("written on the event-loop thread:", writers.count(main_thread), file=sys.stderr)
    """
)


def test_queued_logs_keep_formats_order_and_every_line() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    access = [line for line in result.stdout.splitlines() if "uvicorn.access" in line]
    assert len(access) == 1 and '"POST /v1/models/m:predict HTTP/1.1" 200' in access[0]
    assert "diffusers_runtime.engine INFO" in result.stderr
    assert "loaded StableDiffusionPipeline on cpu" in result.stderr
    numbered = [line.rsplit(" ", 1)[1] for line in result.stderr.splitlines() if " line " in line]
    assert numbered == [str(i) for i in range(200)]
    assert "written on the event-loop thread: 0" in result.stderr


def test_kserve_client_errors_log_one_line_and_not_ready_polls_nothing() -> None:
    import asyncio
    import logging

    from diffusers_runtime.logs import quiet_client_errors
    from kserve.errors import (
        ModelNotFound,
        ModelNotReady,
        generic_exception_handler,
        model_not_found_handler,
        model_not_ready_handler,
    )
    from kserve.logging import KSERVE_LOGGER_NAME

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(KSERVE_LOGGER_NAME)
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    quiet_client_errors()
    try:
        asyncio.run(model_not_found_handler(None, ModelNotFound("nobody")))
        asyncio.run(model_not_ready_handler(None, ModelNotReady("loading")))
        asyncio.run(generic_exception_handler(None, RuntimeError("a real bug")))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r.levelname for r in records] == ["INFO", "ERROR"]
    assert records[0].exc_info is None and "ModelNotFound" in records[0].getMessage()
    assert records[1].exc_info is not None  # a bug keeps its traceback
