"""One call that runs a Pipeline file locally, shared by `modelpipe local run` and the local session."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelpipe.errors import TektonSpecError
from modelpipe.local.tekton.executor import ExecOptions
from modelpipe.local.tekton.host import LocalValues, LogSink, ProcessTable, read_secrets_file, step_base_env
from modelpipe.local.tekton.model import ParamValue
from modelpipe.local.tekton.params import parse_cli_params
from modelpipe.local.tekton.parsing import load_pipeline, load_tasks
from modelpipe.local.tekton.runner import PipelineRunResult, RunContext, new_run_name, run_pipeline
from modelpipe.local.tekton.validation import resolve_pipeline


def default_tasks_dir(pipeline_path: Path) -> Path:
    """``tasks/`` beside the pipeline's folder (``pipelines/../tasks``), else ``./tasks``."""
    beside = pipeline_path.resolve().parent.parent / "tasks"
    return beside if beside.is_dir() else Path("tasks")


def default_source_dir(pipeline_path: Path) -> Path:
    """The git working tree holding the pipeline file (what the git-clone equivalent copies)."""
    try:
        top = subprocess.run(
            ["git", "-C", str(pipeline_path.resolve().parent), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return pipeline_path.resolve().parent.parent
    return Path(top)


def run_pipeline_cli(
    *,
    pipeline_path: Path,
    raw_params: Sequence[str] = (),
    params: Mapping[str, ParamValue] | None = None,
    workspaces: Mapping[str, Path],
    tasks_dir: Path | None,
    state_dir: Path,
    run_dir: Path | None,
    source_dir: Path | None,
    secrets_file: Path | None,
    environ: Mapping[str, str],
    venv_bin: Path,
    explicit_values: Mapping[str, str] | None = None,
    sink: LogSink | None = None,
) -> PipelineRunResult:
    """Load, validate and run ``pipeline_path``; raise when the run fails.

    Args:
        raw_params: ``name=value`` strings from ``-p`` (merged over ``params``).
        explicit_values: Values for secretKeyRef/configMapKeyRef keys (the stand-ins' endpoints and
            credentials); the secrets file overrides them, the process env only fills gaps.

    Raises:
        TektonSpecError: Invalid YAML, unknown references, missing required params (nothing ran).
        UnsupportedTektonFeatureError: A feature the runner cannot honour, by name.
        PipelineTaskFailedError: A task failed (task, step, exit code and log path in the message).
    """
    pipeline = load_pipeline(pipeline_path)
    tasks_dir = tasks_dir or default_tasks_dir(pipeline_path)
    values: dict[str, ParamValue] = dict(params or {})
    values.update(parse_cli_params(pipeline.params, raw_params))
    run_name = new_run_name(pipeline.name)
    run_dir = (run_dir or state_dir / "runs" / run_name).resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise TektonSpecError(f"run folder {run_dir} is not empty", fix="pass a new --run-dir")
    resolved = resolve_pipeline(
        pipeline, task_catalog=load_tasks(tasks_dir), params=values, workspaces=workspaces, run_dir=run_dir
    )
    options = ExecOptions(
        base_env=step_base_env(environ, venv_bin),
        local_values=LocalValues(
            sources=(
                read_secrets_file(secrets_file) if secrets_file else {},
                dict(explicit_values or {}),
                dict(environ),
            )
        ),
        source_dir=(source_dir or default_source_dir(pipeline_path)).resolve(),
        sink=sink or LogSink(),
        processes=ProcessTable(),
    )
    result = run_pipeline(resolved, RunContext(run_name=run_name, run_dir=run_dir), options)
    result.raise_for_status()
    return result
