"""Parsed tekton.dev/v1 Task and Pipeline objects as the local runner uses them (built by ``parsing.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ParamValue = str | list[str] | dict[str, str]


@dataclass(frozen=True)
class ParamSpec:
    """A declared param: type, default (None = required), object keys, allowed values."""

    name: str
    type: str = "string"
    default: ParamValue | None = None
    properties: tuple[str, ...] = ()
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyRef:
    """An env value taken from a Secret or ConfigMap key (``kind`` is ``secret`` or ``configMap``)."""

    kind: str
    name: str
    key: str
    optional: bool = False


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None
    key_ref: KeyRef | None = None


@dataclass(frozen=True)
class Step:
    """One step: a script (shebang honoured, default sh with ``set -e``) or command + args."""

    name: str
    script: str | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    working_dir: str | None = None
    on_error: str = "stopAndFail"
    timeout: float | None = None


@dataclass(frozen=True)
class WorkspaceDecl:
    name: str
    optional: bool = False


@dataclass(frozen=True)
class ResultDecl:
    name: str
    type: str = "string"


@dataclass(frozen=True)
class Task:
    """A Task: declarations plus steps; ``unsupported`` lists features rejected before it runs."""

    name: str
    params: tuple[ParamSpec, ...] = ()
    workspaces: tuple[WorkspaceDecl, ...] = ()
    results: tuple[ResultDecl, ...] = ()
    steps: tuple[Step, ...] = ()
    source: str = "<inline>"
    unsupported: tuple[str, ...] = ()
    builtin: str | None = None  # name in resolvers.LOCAL_EQUIVALENTS when this Task runs as Python


@dataclass(frozen=True)
class TaskRef:
    name: str | None = None
    resolver: str | None = None
    resolver_params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WhenExpression:
    input: str
    operator: str
    values: tuple[str, ...] | str  # a str is a whole-array reference such as $(params.envs[*])


@dataclass(frozen=True)
class WorkspaceBinding:
    name: str
    workspace: str | None
    sub_path: str | None = None


@dataclass(frozen=True)
class PipelineTask:
    name: str
    task_ref: TaskRef | None = None
    task_spec: Task | None = None
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    run_after: tuple[str, ...] = ()
    when: tuple[WhenExpression, ...] = ()
    retries: int = 0
    timeout: float | None = None
    workspaces: tuple[WorkspaceBinding, ...] = ()
    on_error: str = "stopAndFail"


@dataclass(frozen=True)
class PipelineResult:
    name: str
    value: ParamValue
    type: str = "string"


@dataclass(frozen=True)
class Pipeline:
    name: str
    params: tuple[ParamSpec, ...] = ()
    workspaces: tuple[WorkspaceDecl, ...] = ()
    tasks: tuple[PipelineTask, ...] = ()
    finally_tasks: tuple[PipelineTask, ...] = ()
    results: tuple[PipelineResult, ...] = ()
    source: str = "<inline>"

    def all_tasks(self) -> tuple[PipelineTask, ...]:
        return self.tasks + self.finally_tasks
