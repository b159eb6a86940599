"""The one process launcher: log offsets per start, readiness outcomes, stopping a detached group."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from modelpipe import processes
from modelpipe.errors import DeployError
from modelpipe.targets import local_served

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


def _http_ready(endpoint_url: str, model_name: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint_url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


HTTP_SERVER = local_served.ServedProgram(
    label="http server", module="http.server", state_file="http.json", log_file="http.log", ready=_http_ready
)


def _serve(state_dir: Path, request: local_served.ServeRequest) -> local_served.LocalRuntime:
    reused = local_served.reuse_or_clear(state_dir, HTTP_SERVER, request)
    if reused is not None:
        return reused
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(request.port)]
    return local_served.launch(
        state_dir, HTTP_SERVER, request, command=command, env=os.environ, timeout=30, poll_seconds=0.05,
        check="nothing",
    )  # fmt: skip


def test_a_served_process_is_recorded_reused_and_stopped_by_its_record_alone(tmp_path: Path) -> None:
    request = local_served.ServeRequest("m", "file:///", processes.free_port(), [])
    first = _serve(tmp_path, request)
    try:
        second = _serve(tmp_path, request)
        assert first.started and not second.started
        assert second.pid == first.pid
    finally:
        stopped = local_served.stop_recorded(tmp_path)
    assert stopped and not processes.alive(first.pid)
    assert not (tmp_path / HTTP_SERVER.state_file).exists()


def test_a_served_process_that_exits_early_leaves_no_record_and_shows_its_log(tmp_path: Path) -> None:
    request = local_served.ServeRequest("m", "file:///", processes.free_port(), [])
    with pytest.raises(
        DeployError, match=r"local http server for m exited before it was ready; http server log: .*boom"
    ):
        local_served.launch(
            tmp_path, HTTP_SERVER, request, command=_python("raise SystemExit('boom')"), env=os.environ,
            timeout=30, poll_seconds=0.05, check="nothing",
        )  # fmt: skip
    assert not (tmp_path / HTTP_SERVER.state_file).exists()
