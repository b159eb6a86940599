"""Run a Pipeline on the host as Tekton would: a DAG of Tasks in parallel threads, then `finally`."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from modelpipe.errors import (
    LocalRunError,
    ModelpipeError,
    PipelineTaskFailedError,
    TektonSpecError,
    UnsupportedTektonFeatureError,
)
from modelpipe.local.tekton.executor import ExecOptions, TaskAttempt, TaskInvocation, run_task
from modelpipe.local.tekton.model import ParamValue, Pipeline, PipelineTask, Task
from modelpipe.local.tekton.params import bind_params
from modelpipe.local.tekton.substitution import (
    Scope,
    UnavailableResultError,
    result_references,
    substitute_string,
    substitute_value,
)
from modelpipe.local.tekton.validation import ResolvedPipeline

log = logging.getLogger(__name__)

SUCCEEDED, FAILED, SKIPPED = "Succeeded", "Failed", "Skipped"
WHEN_FALSE = "WhenExpressionsEvaluatedToFalse"


@dataclass(frozen=True)
class TaskStatus:
    """How one pipeline task ended."""

    name: str
    status: str
    reason: str = ""
    results: Mapping[str, ParamValue] = field(default_factory=dict)
    seconds: float = 0.0
    attempts: int = 0
    failure: TaskAttempt | None = None
    error: ModelpipeError | None = None
    continued: bool = False  # failed, but the pipeline task has onError: continue


@dataclass(frozen=True)
class PipelineRunResult:
    """The outcome of a local PipelineRun: status, per-task status, pipeline results, where logs are."""

    name: str
    pipeline: str
    status: str
    tasks: Mapping[str, TaskStatus]
    results: Mapping[str, ParamValue]
    run_dir: Path
    failure: TaskStatus | None = None

    def result_strings(self) -> dict[str, str]:
        """Pipeline results as strings (arrays and objects as JSON)."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.results.items()}

    def failure_message(self) -> str | None:
        """One line naming the failing task, step, exit code and log, or None when the run succeeded."""
        failed = self.failure
        if failed is None:
            return None
        if failed.error is not None:
            return f"task {failed.name} failed: {failed.error.one_line()}"
        attempt = failed.failure or TaskAttempt(False)
        parts = [f"pipeline {self.pipeline} run {self.name}: task {failed.name} failed"]
        if attempt.step:
            parts.append(f"at step {attempt.step}")
        parts.append(f"({attempt.reason})" if attempt.reason else "")
        if attempt.log_path:
            parts.append(f"log: {attempt.log_path}")
        return " ".join(p for p in parts if p)

    def raise_for_status(self) -> None:
        """Raise when the run failed.

        Raises:
            UnsupportedTektonFeatureError: A Task needed a feature the runner cannot honour.
            TektonSpecError: A Task referred to something undefined.
            PipelineTaskFailedError: A task failed (message names task, step, exit code and log).
        """
        if self.status != FAILED:
            return
        if self.failure is not None and isinstance(
            self.failure.error, TektonSpecError | UnsupportedTektonFeatureError
        ):
            raise self.failure.error
        raise PipelineTaskFailedError(self.failure_message() or f"pipeline {self.pipeline} failed")


def new_run_name(pipeline: str) -> str:
    """A PipelineRun-like name: ``<pipeline>-run-<UTC time>-<5 hex>``."""
    return f"{pipeline}-run-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:5]}"


@dataclass(frozen=True)
class RunContext:
    """Names of this run, as Tekton's context variables show them."""

    run_name: str
    run_dir: Path
    namespace: str = "local"
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


class PipelineRunner:
    """Schedules one PipelineRun: a task starts when its runAfter and result dependencies are done."""

    def __init__(self, resolved: ResolvedPipeline, ctx: RunContext, options: ExecOptions) -> None:
        self.resolved = resolved
        self.pipeline: Pipeline = resolved.pipeline
        self.ctx = ctx
        self.options = options
        self.statuses: dict[str, TaskStatus] = {}
        self.first_failure: TaskStatus | None = None

    # --- scopes -------------------------------------------------------------------------------------
    def _scope(self, pt: PipelineTask, in_finally: bool) -> Scope:
        values: dict[str, ParamValue] = {f"params.{k}": v for k, v in self.resolved.params.items()}
        values.update(
            {
                "context.pipelineRun.name": self.ctx.run_name,
                "context.pipelineRun.namespace": self.ctx.namespace,
                "context.pipelineRun.uid": self.ctx.uid,
                "context.pipeline.name": self.pipeline.name,
                "context.pipelineTask.retries": str(pt.retries),
            }
        )
        for name, path in self.resolved.workspaces.items():
            values[f"workspaces.{name}.bound"] = "true" if path else "false"
        unavailable = set()
        for name, status in self.statuses.items():
            for result, value in status.results.items():
                values[f"tasks.{name}.results.{result}"] = value
            if status.status != SUCCEEDED:
                unavailable.add(f"tasks.{name}.results")
            if in_finally:
                values[f"tasks.{name}.status"] = "None" if status.status == SKIPPED else status.status
                values[f"tasks.{name}.reason"] = status.reason
        if in_finally:
            values["tasks.status"] = self._aggregate_status()
        return Scope(values=values, unavailable=frozenset(unavailable), where=f"pipeline task {pt.name}")

    def _aggregate_status(self) -> str:
        states = [s.status for n, s in self.statuses.items() if n in self.resolved.dag_names]
        if any(s == FAILED for s in states):
            return "Failed"
        if any(s == SKIPPED for s in states):
            return "Completed"
        return "Succeeded"

    # --- one task -----------------------------------------------------------------------------------
    def _prepare(self, pt: PipelineTask, in_finally: bool) -> tuple[dict[str, ParamValue] | None, str]:
        """Params for ``pt`` after substitution, or None plus the reason it is skipped.

        Raises:
            LocalRunError: A DAG task reads a result its succeeded parent did not write.
        """
        scope = self._scope(pt, in_finally)
        for task_name, result in sorted(
            result_references([*pt.params.values(), *(w.input for w in pt.when)])
        ):
            status = self.statuses.get(task_name)
            if status is not None and status.status == SUCCEEDED and result not in status.results:
                if in_finally:
                    return None, f"task {task_name} did not produce result {result}"
                raise LocalRunError(f"task {task_name} succeeded but did not write result {result}")
        try:
            for expr in pt.when:
                actual = substitute_string(expr.input, scope)
                values = (
                    substitute_value(expr.values, scope)
                    if isinstance(expr.values, str)
                    else [substitute_string(v, scope) for v in expr.values]
                )
                matched = actual in values
                if matched != (expr.operator == "in"):
                    return None, f"{WHEN_FALSE}: {actual!r} {expr.operator} {list(values)!r} is false"
            params = {name: substitute_value(value, scope) for name, value in pt.params.items()}
        except UnavailableResultError as err:
            return None, f"$({err.expr}) is unavailable (its task was skipped or failed)"
        return params, ""

    def _run_with_retries(self, pt: PipelineTask, task: Task, params: Mapping[str, ParamValue]) -> TaskStatus:
        started = time.monotonic()
        task_dir = self.ctx.run_dir / pt.name
        task_dir.mkdir(parents=True, exist_ok=True)
        workspaces = self.resolved.task_workspaces(pt, task)
        bound = bind_params(task, params, f"pipeline task {pt.name}")
        attempt_result = TaskAttempt(False)
        for attempt in range(pt.retries + 1):
            if self.options.processes.cancelled.is_set():
                break
            if attempt:
                log.info("task %s: retry %d of %d", pt.name, attempt, pt.retries)
            context = {
                "context.taskRun.name": f"{self.ctx.run_name}-{pt.name}",
                "context.taskRun.namespace": self.ctx.namespace,
                "context.taskRun.uid": str(uuid.uuid4()),
                "context.task.name": task.name,
                "context.task.retry-count": str(attempt),
            }
            inv = TaskInvocation(pt.name, task, bound, workspaces, context, task_dir, pt.timeout, attempt)
            attempt_result = run_task(inv, self.options)
            if attempt_result.succeeded:
                return TaskStatus(
                    pt.name, SUCCEEDED, "", attempt_result.results, time.monotonic() - started, attempt + 1
                )
        return TaskStatus(
            pt.name,
            FAILED,
            attempt_result.reason,
            {},
            time.monotonic() - started,
            pt.retries + 1,
            failure=attempt_result,
            continued=pt.on_error == "continue",
        )

    def _execute(self, pt: PipelineTask, params: Mapping[str, ParamValue]) -> TaskStatus:
        task = self.resolved.tasks[pt.name]
        log.info("task %s started (Task %s)", pt.name, task.name)
        try:
            return self._run_with_retries(pt, task, params)
        except ModelpipeError as err:
            return TaskStatus(pt.name, FAILED, err.one_line(), error=err)

    def _record(self, status: TaskStatus) -> None:
        self.statuses[status.name] = status
        if status.status == SUCCEEDED:
            log.info("task %s succeeded in %.1fs", status.name, status.seconds)
        elif status.status == SKIPPED:
            log.info("task %s skipped: %s", status.name, status.reason)
        else:
            where = status.failure.log_path if status.failure and status.failure.log_path else None
            log.error(
                "task %s failed%s: %s%s",
                status.name,
                f" at step {status.failure.step}" if status.failure and status.failure.step else "",
                status.reason,
                f" (log: {where})" if where else "",
            )
            if status.continued:
                log.info("task %s has onError: continue; the pipeline goes on", status.name)
            elif self.first_failure is None:
                self.first_failure = status

    # --- scheduling ---------------------------------------------------------------------------------
    def _parent_block(self, pt: PipelineTask) -> str | None:
        for parent in self.resolved.deps[pt.name]:
            status = self.statuses[parent]
            if status.status == SKIPPED and not status.reason.startswith(WHEN_FALSE):
                return f"parent task {parent} was skipped"
            if status.status == FAILED and not status.continued:
                return f"parent task {parent} failed"
        return None

    def _run_group(self, tasks: tuple[PipelineTask, ...], in_finally: bool) -> None:
        running: dict[Future[TaskStatus], str] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(tasks)), thread_name_prefix="task") as pool:
            try:
                while True:
                    progressed = False
                    for pt in tasks:
                        if pt.name in self.statuses or pt.name in running.values():
                            continue
                        if not all(d in self.statuses for d in self.resolved.deps[pt.name]):
                            continue
                        reason = None if in_finally else self._parent_block(pt)
                        if reason is None and self.first_failure is not None and not in_finally:
                            reason = "the pipeline is stopping after a failure"
                        params: dict[str, ParamValue] | None = None
                        if reason is None:
                            try:
                                params, reason = self._prepare(pt, in_finally)
                            except ModelpipeError as err:
                                self._record(TaskStatus(pt.name, FAILED, err.one_line(), error=err))
                                progressed = True
                                continue
                        progressed = True
                        if params is None:
                            self._record(TaskStatus(pt.name, SKIPPED, reason or ""))
                            continue
                        running[pool.submit(self._execute, pt, params)] = pt.name
                    if not running:
                        if all(pt.name in self.statuses for pt in tasks):
                            return
                        if not progressed:
                            waiting = sorted(pt.name for pt in tasks if pt.name not in self.statuses)
                            raise LocalRunError(
                                f"tasks {', '.join(waiting)} can never start (dependency cycle)"
                            )
                        continue
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        running.pop(future)
                        self._record(future.result())
            except KeyboardInterrupt:
                self.options.processes.kill_all()
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    def run(self) -> PipelineRunResult:
        self.ctx.run_dir.mkdir(parents=True, exist_ok=True)
        log.info("pipeline %s run %s: logs in %s", self.pipeline.name, self.ctx.run_name, self.ctx.run_dir)
        self._run_group(self.pipeline.tasks, in_finally=False)
        dag_failure = self.first_failure
        if self.pipeline.finally_tasks:
            self._run_group(self.pipeline.finally_tasks, in_finally=True)
        failure = dag_failure or self.first_failure
        status = FAILED if failure else self._aggregate_status()
        return PipelineRunResult(
            name=self.ctx.run_name,
            pipeline=self.pipeline.name,
            status=status,
            tasks=dict(self.statuses),
            results=self._pipeline_results(),
            run_dir=self.ctx.run_dir,
            failure=failure,
        )

    def _pipeline_results(self) -> dict[str, ParamValue]:
        scope = self._scope(PipelineTask(name="results"), in_finally=False)
        scope = Scope(
            values=scope.values, unavailable=scope.unavailable, where=f"pipeline {self.pipeline.name} results"
        )
        out: dict[str, ParamValue] = {}
        missing = []
        for result in self.pipeline.results:
            try:
                out[result.name] = substitute_value(result.value, scope)
            except (UnavailableResultError, TektonSpecError) as err:
                log.debug("pipeline result %s not available: %s", result.name, err)
                missing.append(result.name)
        if missing and self.first_failure is None:
            log.info("pipeline results not produced (their tasks were skipped): %s", ", ".join(missing))
        return out


def run_pipeline(resolved: ResolvedPipeline, ctx: RunContext, options: ExecOptions) -> PipelineRunResult:
    """Run a validated pipeline; the result says how it ended (``raise_for_status`` raises on failure)."""
    return PipelineRunner(resolved, ctx, options).run()
