"""The one process launcher: log offsets per start, readiness outcomes, stopping a detached group."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from modelpipe import processes

pytestmark = pytest.mark.integration


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_log_tail_holds_only_this_start(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("old run\n")
    child = processes.start_process(_python("print('new run', flush=True)"), log_path=log, banner="--- start")
    child.popen.wait(timeout=30)
    assert child.tail() == "new run"
    assert log.read_text().startswith("old run\n--- start\n")


def test_wait_ready_reports_an_early_exit(tmp_path: Path) -> None:
    child = processes.start_process(_python("raise SystemExit(3)"), log_path=tmp_path / "log")
    assert child.wait_ready(lambda: False, timeout=30, poll_seconds=0.01) == "exited"
    assert child.exit_code() == 3


def test_wait_ready_times_out_while_it_runs(tmp_path: Path) -> None:
    child = processes.start_process(_python("import time; time.sleep(60)"), log_path=tmp_path / "log")
    try:
        assert child.wait_ready(lambda: False, timeout=0.2, poll_seconds=0.01) == "timeout"
    finally:
        child.stop(timeout=5)
    assert child.exit_code() is not None


def test_stop_group_kills_a_detached_child_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('up', flush=True); time.sleep(60)"
    )
    child = processes.start_process(_python(code), log_path=tmp_path / "log", detach=True)
    deadline = time.monotonic() + 30
    while child.tail() != "up" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes.stop_group(child.pid, timeout=0.3) is True
    assert not processes.alive(child.pid)
