"""The one record of a local model server: reading, the recycled-pid guard, stopping whatever is recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from modelpipe.errors import DeployError
from modelpipe.processes import free_port
from modelpipe.targets import local_process, local_served, local_vllm


def _record(state_dir: Path, program: local_served.ServedProgram, **changes: object) -> Path:
    """A state file naming this test process (which runs neither server module)."""
    assert not local_served.runs_module(os.getpid(), program.module), "the guard would signal pytest itself"
    state = {
        "pid": os.getpid(),
        "port": 8080,
        "model_name": "m",
        "model_uri": "s3://b/p",
        "args": [],
        "log_file": str(state_dir / program.log_file),
        "started_at": 0.0,
        "module": program.module,
    }
    path = state_dir / program.state_file
    path.write_text(json.dumps({**state, **changes}))
    return path


def test_stop_recorded_without_a_state_folder_reports_nothing_running(tmp_path: Path) -> None:
    assert local_served.stop_recorded(tmp_path / "missing") is False


@pytest.mark.parametrize("program", [local_process.RUNTIME, local_vllm.VLLM], ids=lambda p: p.label)
def test_a_recorded_pid_running_another_program_is_not_signalled(
    tmp_path: Path, program: local_served.ServedProgram
) -> None:
    path = _record(tmp_path, program)

    assert local_served.stop_recorded(tmp_path) is False  # this test process is still here to assert it
    assert not path.exists()


def test_stop_recorded_finds_every_kind_without_being_told_which(tmp_path: Path) -> None:
    _record(tmp_path, local_process.RUNTIME)
    _record(tmp_path, local_vllm.VLLM)
    (tmp_path / "notes.json").write_text('{"not": "a record"}')

    assert [state.module for _, state in local_served.recorded(tmp_path)] == [
        local_process.RUNTIME_MODULE,
        local_vllm.VLLM_MODULE,
    ]
    local_served.stop_recorded(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.json"]


def test_a_damaged_state_file_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / local_vllm.STATE_FILE).write_text("{not json")

    with pytest.raises(DeployError, match=r"vllm\.json is not a local server state file"):
        local_served.stop_recorded(tmp_path)


def test_a_record_without_its_module_is_refused_rather_than_guessed(tmp_path: Path) -> None:
    path = _record(tmp_path, local_process.RUNTIME)
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "module"}))

    with pytest.raises(DeployError, match=r"runtime\.json is not a local server state file"):
        local_process.stop_local_runtime(tmp_path)
    assert path.exists()


def test_starting_one_kind_clears_a_record_of_the_other(tmp_path: Path) -> None:
    vllm_record = _record(tmp_path, local_vllm.VLLM)
    request = local_served.ServeRequest("m", "s3://b/p", free_port(), [])

    assert local_served.reuse_or_clear(tmp_path, local_process.RUNTIME, request) is None
    assert not vllm_record.exists()


def test_a_record_of_a_dead_server_is_not_reused(tmp_path: Path) -> None:
    request = local_served.ServeRequest("m", "s3://b/p", free_port(), [])
    path = _record(tmp_path, local_process.RUNTIME, port=request.port)  # our pid: alive, wrong module

    assert local_served.reuse_or_clear(tmp_path, local_process.RUNTIME, request) is None
    assert not path.exists()
