"""Tiny synthetic Tasks and Pipelines for the local runner tests (no dependency on the real tasks/)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from modelpipe.local.tekton.executor import ExecOptions
from modelpipe.local.tekton.host import (
    LocalValues,
    LogSink,
    ProcessTable,
    step_base_env,
)
from modelpipe.local.tekton.parsing import load_pipeline, load_tasks
from modelpipe.local.tekton.runner import PipelineRunResult, RunContext, run_pipeline
from modelpipe.local.tekton.validation import resolve_pipeline


def task(name: str, *, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """A ``kind: Task`` document."""
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": {"steps": steps, **spec},
    }


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    """A step running ``script`` (image given as on a cluster; it is not pulled)."""
    return {
        "name": name,
        "image": "docker.io/library/busybox:1.36",
        "script": script,
        **extra,
    }


def pipeline(tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """A ``kind: Pipeline`` document named ``demo``."""
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "Pipeline",
        "metadata": {"name": "demo"},
        "spec": {"tasks": tasks, **spec},
    }


def ref(name: str, task_name: str, **extra: Any) -> dict[str, Any]:
    """A pipeline task using ``taskRef: {name: task_name}``."""
    return {"name": name, "taskRef": {"name": task_name}, **extra}


@dataclass
class Layout:
    """A temporary repository-like folder: tasks/, pipelines/demo.yaml, runs/."""

    root: Path

    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    @property
    def pipeline_path(self) -> Path:
        return self.root / "pipelines" / "demo.yaml"

    def write(self, pipeline_doc: dict[str, Any], *task_docs: dict[str, Any]) -> None:
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        self.pipeline_path.parent.mkdir(parents=True, exist_ok=True)
        for doc in task_docs:
            (self.tasks_dir / f"{doc['metadata']['name']}.yaml").write_text(
                yaml.safe_dump(doc), encoding="utf-8"
            )
        self.pipeline_path.write_text(yaml.safe_dump(pipeline_doc), encoding="utf-8")


@dataclass
class Run:
    """A finished run plus everything the sink printed."""

    result: PipelineRunResult
    output: str

    def status(self, task_name: str) -> str:
        return self.result.tasks[task_name].status

    def results(self, task_name: str) -> Mapping[str, Any]:
        return self.result.tasks[task_name].results


def run(
    layout: Layout,
    params: Mapping[str, Any] | None = None,
    *,
    workspaces: Mapping[str, Path] | None = None,
    values: Mapping[str, str] | None = None,
    source_dir: Path | None = None,
    processes: ProcessTable | None = None,
) -> Run:
    """Validate and run ``layout``'s pipeline; returns the result even when it failed."""
    stream = io.StringIO()
    run_dir = (
        layout.root
        / "runs"
        / f"run-{len(list((layout.root / 'runs').glob('*'))) if (layout.root / 'runs').exists() else 0}"
    )
    resolved = resolve_pipeline(
        load_pipeline(layout.pipeline_path),
        task_catalog=load_tasks(layout.tasks_dir),
        params=dict(params or {}),
        workspaces=dict(workspaces or {}),
        run_dir=run_dir,
    )
    options = ExecOptions(
        base_env=step_base_env(os.environ, Path(sys.executable).parent),
        local_values=LocalValues(sources=(dict(values or {}),)),
        source_dir=source_dir or layout.root,
        sink=LogSink(stream),
        processes=processes or ProcessTable(),
    )
    result = run_pipeline(resolved, RunContext(run_name="demo-run-1", run_dir=run_dir), options)
    return Run(result=result, output=stream.getvalue())
