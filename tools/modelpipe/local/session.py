"""`modelpipe local import|test`: start the stand-ins under one state folder and run our pipelines."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from modelpipe.build_context import base_images
from modelpipe.config import MODELPIPE_EVAL_BIN
from modelpipe.errors import LocalRunError
from modelpipe.local.services import (
    BUCKET,
    Services,
    running_services,
    sigterm_as_interrupt,
    stop_command,
)
from modelpipe.local.tekton.api import run_pipeline_cli
from modelpipe.local.tekton.parsing import load_tasks
from modelpipe.local.tekton.runner import PipelineRunResult
from modelpipe.model_kinds import TEXT_GENERATION, TEXT_TO_IMAGE
from modelpipe.names import dns_label
from modelpipe.processes import free_port
from modelpipe.sources import HubSource, parse_source

log = logging.getLogger(__name__)

DATA_CONNECTION = "modelpipe"
AUTHOR = "modelpipe-local"
# Small enough for the whole local import to finish in well under 3 minutes on 2 cores.
# Steps, size and guidance are left to the served model's defaults, which the benchmark reads back.
BENCHMARK_PARAMS = {
    "concurrency": "1,2",
    "requests": "4",
}
# The LLM branch: the bundled offline lm-eval tasks, and a short guidellm sweep.
LLM_TEST_PARAMS = {
    "tasks": "modelpipe_science_mc,modelpipe_sentence_mc,modelpipe_arith_gen",
    "limit": "10",
    "concurrency": "1,2",
    "requests": "10",
}
# The tiny demo model is imported with serving defaults that keep the local run short.
DEMO_SERVING_DEFAULTS = {"default-steps": "2", "default-size": "64x64"}


@dataclass(frozen=True)
class SessionSettings:
    """Where state lives and how the stand-ins run.

    Attributes:
        repo_dir: Repository root (pipelines/, tasks/, runtime/).
        state_dir: ``.local``-style folder: s3/, registry.db, runs/, models/, runtime/.
        secrets_file: KEY=VALUE overrides for secretKeyRef/configMapKeyRef keys (e.g. other S3 keys).
    """

    repo_dir: Path
    state_dir: Path
    environ: Mapping[str, str]
    venv_bin: Path
    secrets_file: Path | None = None
    name: str | None = None
    keep_running: bool = False
    clip_model: str | None = None
    s3_port: int | None = None
    registry_port: int | None = None
    image_repo: str | None = None
    model_kind: str = TEXT_TO_IMAGE


@dataclass(frozen=True)
class SessionOutcome:
    """What a local import or test produced, for the printed summary."""

    run: PipelineRunResult
    values: Mapping[str, str] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, str]:
        return {**self.values, **self.notes, "run": self.run.name, "logs": str(self.run.run_dir)}


def _services(settings: SessionSettings) -> AbstractContextManager[Services]:
    return running_services(
        settings.state_dir,
        s3_port=settings.s3_port,
        registry_port=settings.registry_port,
        keep_running=settings.keep_running,
    )


def build_decision(
    repo_dir: Path, tasks_dir: Path, environ: Mapping[str, str], image_repo: str | None = "local"
) -> tuple[bool, str]:
    """Whether build-runtime can run here, and why not: buildah, the base image, the runner, a push target."""
    buildah = shutil.which("buildah", path=environ.get("PATH"))
    if buildah is None:
        return False, "buildah is not installed"
    containerfile = repo_dir / "runtime" / "Containerfile"
    if not containerfile.is_file():
        return False, f"{containerfile.relative_to(repo_dir)} not found"
    bases = base_images(containerfile.read_text(encoding="utf-8"))
    if not bases:
        return False, f"no FROM line found in {containerfile}"
    for base in bases:
        if "$" in base:
            return False, f"base image {base} depends on a build arg without a default"
        found = subprocess.run(
            [buildah, "inspect", "--type", "image", base], capture_output=True, check=False
        )
        if found.returncode != 0:
            return (
                False,
                f"base image {base} is not in local container storage (no registry mirror to pull from)",
            )
    task = load_tasks(tasks_dir).get("build-runtime")
    if task is not None and task.unsupported:
        return (
            False,
            f"Task build-runtime needs {', '.join(task.unsupported)}, which the local runner cannot honour",
        )
    if not image_repo:
        return False, "no --image to push the runtime image to"
    return True, "buildah and the base image are available"


def _model_source(settings: SessionSettings, source: str | None) -> tuple[str, str]:
    """The source URI and a default model name: the tiny demo model unless a source is given."""
    if source is None and settings.model_kind == TEXT_GENERATION:
        from modelpipe.demo_models import DEMO_MODELS

        folder = settings.state_dir / "models" / "tiny-llm"
        if not (folder / "config.json").is_file():
            log.info("writing the tiny demo language model to %s", folder)
            DEMO_MODELS["tiny-llm"](folder)
        return folder.resolve().as_uri(), "tiny-llm"
    if source is None:
        from modelpipe.demo_models import write_tiny_sd

        folder = settings.state_dir / "models" / "tiny-sd"
        if not (folder / "model_index.json").is_file():
            log.info("writing the tiny demo model to %s", folder)
            write_tiny_sd(folder)
        return folder.resolve().as_uri(), "tiny-sd"
    return source, parse_source(source).name


def _default_version(uri: str) -> str:
    """The ``@REV`` of an hf:// source names the version; anything else is v1."""
    parsed = parse_source(uri)
    return parsed.revision if isinstance(parsed, HubSource) and parsed.pinned else "v1"


def _clip_model(settings: SessionSettings) -> str:
    if settings.clip_model:
        return settings.clip_model
    from modelpipe.demo_models import write_tiny_clip

    folder = settings.state_dir / "models" / "tiny-clip"
    if not (folder / "config.json").is_file():
        write_tiny_clip(folder)
    return str(folder.resolve())


def _run(
    settings: SessionSettings, pipeline: str, params: dict[str, str], services: Services
) -> PipelineRunResult:
    values = {**services.s3_env, "MODEL_REGISTRY_URL": services.registry_url, "MODEL_REGISTRY_AUTHOR": AUTHOR}
    return run_pipeline_cli(
        pipeline_path=settings.repo_dir / "pipelines" / pipeline,
        params=params,
        workspaces={},
        tasks_dir=settings.repo_dir / "tasks",
        state_dir=settings.state_dir,
        run_dir=None,
        source_dir=settings.repo_dir,
        secrets_file=settings.secrets_file,
        environ=settings.environ,
        venv_bin=settings.venv_bin,
        explicit_values=values,
    )


def _check_eval_tools(settings: SessionSettings) -> None:
    """Fail before any service starts when the LLM branch's lm_eval/guidellm are not where steps look.

    Raises:
        LocalRunError: A language model is tested and neither MODELPIPE_EVAL_BIN nor .venv-eval has them.
    """
    if settings.model_kind != TEXT_GENERATION:
        return
    configured = settings.environ.get(MODELPIPE_EVAL_BIN)
    eval_bin = Path(configured) if configured else settings.repo_dir / ".venv-eval" / "bin"
    if not (eval_bin / "lm_eval").is_file():
        raise LocalRunError(
            f"lm_eval not found in {eval_bin} (the evaluation venv)",
            fix=f"run `make eval-env`, or set {MODELPIPE_EVAL_BIN} to a folder with lm_eval and guidellm",
        )


def _deploy_params(settings: SessionSettings, services: Services, name: str) -> dict[str, str]:
    common = {
        "model-kind": settings.model_kind,
        "target": "local",
        "name": dns_label(name),
        "port": str(free_port()),
        "state-dir": str(settings.state_dir / "runtime"),
        "registry-url": services.registry_url,
        "data-connection": DATA_CONNECTION,
    }
    if settings.model_kind == TEXT_GENERATION:
        return {**common, **LLM_TEST_PARAMS}
    return {**common, "clip-model": _clip_model(settings), **BENCHMARK_PARAMS}


def _task_result(run: PipelineRunResult, task: str, name: str) -> str:
    status = run.tasks.get(task)
    value = status.results.get(name) if status else None
    return value if isinstance(value, str) else "-"


def _report_copy(settings: SessionSettings, services: Services, report_uri: str, run: str) -> str:
    """Download the report folder (HTML and its images) beside the run's logs; the local HTML path."""
    from modelpipe.config import S3Settings
    from modelpipe.s3 import download_folder_of, make_s3_client

    if not report_uri.startswith("s3://"):
        return "-"
    client = make_s3_client(S3Settings.from_env(services.s3_env))
    return str(download_folder_of(client, report_uri, settings.state_dir / "reports" / run))


def _summary(
    settings: SessionSettings, services: Services, run: PipelineRunResult, bench: str
) -> dict[str, str]:
    report_uri = _task_result(run, "publish-results", "REPORT_URI")
    values = {
        "registered_model_id": _task_result(run, "register-model", "REGISTERED_MODEL_ID"),
        "model_version_id": _task_result(run, "register-model", "MODEL_VERSION_ID"),
        "model_uri": _task_result(run, "upload-model", "MODEL_URI"),
        "endpoint": _task_result(run, "deploy-model", "ENDPOINT_URL"),
    }
    if settings.model_kind == TEXT_GENERATION:
        values["eval_scores"] = _task_result(run, "evaluate-model", "EVAL_SCORES")
        for key in ("TTFT_P50_MS", "P95_SECONDS", "OUTPUT_TOKENS_PER_SECOND"):
            values[key.lower()] = _task_result(run, "load-test-model", key)
    else:
        for key in ("CLIP_SCORE", "P50_SECONDS", "P95_SECONDS", "IMAGES_PER_SECOND"):
            values[key.lower()] = _task_result(run, bench, key)
    values["report_uri"] = report_uri
    values["report_path"] = _report_copy(settings, services, report_uri, run.name)
    return values


def import_model(
    settings: SessionSettings,
    *,
    source: str | None,
    version: str | None,
    variant: str = "",
    serving_defaults: Mapping[str, str] | None = None,
) -> SessionOutcome:
    """Run pipelines/model-import.yaml locally: download, upload, (build), register, deploy, bench, publish.

    Raises:
        LocalRunError: A stand-in did not start.
        PipelineTaskFailedError: A task failed (named, with step, exit code and log).
        TektonSpecError, UnsupportedTektonFeatureError: The pipeline YAML cannot run locally.
    """
    _check_eval_tools(settings)
    uri, default_name = _model_source(settings, source)
    name = settings.name or default_name
    defaults = dict(serving_defaults or {})
    if source is None and settings.model_kind != TEXT_GENERATION and not any(defaults.values()):
        defaults = dict(DEMO_SERVING_DEFAULTS)
    version = version or _default_version(uri)
    can_build, why = build_decision(
        settings.repo_dir, settings.repo_dir / "tasks", settings.environ, settings.image_repo
    )
    log.info("build-runtime %s: %s", "runs" if can_build else "skipped", why)
    with sigterm_as_interrupt(), _services(settings) as services:
        params = {
            "model-kind": settings.model_kind,
            "source": uri,
            "model-name": name,
            "version-name": version,
            "s3-bucket": BUCKET,
            "build": "true" if can_build else "false",
            **({"image": settings.image_repo} if can_build and settings.image_repo else {}),
            "deploy": "true",
            **_deploy_params(settings, services, name),
            **({"variant": variant} if variant else {}),
            **{key: value for key, value in defaults.items() if value},
        }
        run = _run(settings, "model-import.yaml", params, services)
        values = {
            "model_name": name,
            "version_name": version,
            **_summary(settings, services, run, "benchmark-model"),
        }
        notes = {"build": f"{'ran' if can_build else 'skipped'} ({why})", **_kept(settings, services)}
    return SessionOutcome(run=run, values=values, notes=notes)


def _kept(settings: SessionSettings, services: Services) -> dict[str, str]:
    if not settings.keep_running:
        return {"services": "stopped (state kept in " + str(settings.state_dir) + ")"}
    return {
        **services.describe,
        "services": "running (--keep-running)",
        "stop_with": stop_command(settings.state_dir, services.pids),
    }


def latest_version(
    registry_url: str, name: str | None, model_kind: str | None = None
) -> tuple[str, str, str, str]:
    """(registered model id, version id, artifact URI, model name) of the most recently updated version.

    Raises:
        LocalRunError: Nothing (or nothing named ``name``) is registered.
    """
    from modelpipe.config import RegistrySettings
    from modelpipe.registry_client import connect_registry, latest_model_version

    registry = connect_registry(RegistrySettings(url=registry_url, token=None, author=AUTHOR))
    latest = latest_model_version(registry, name, model_kind)
    if latest is None:
        what = f"{model_kind} model" if model_kind else "model"
        raise LocalRunError(
            f"no registered {what + ' ' + name if name else what} in the local registry",
            fix="run ./run-model-import.sh --local first",
        )
    model, version = latest
    artifact = registry.get_model_artifact(model.name, version.name)
    if artifact is None or not artifact.uri:
        raise LocalRunError(f"version {model.name}/{version.name} has no model artifact URI")
    return str(model.id), str(version.id), str(artifact.uri), str(model.name)


def test_model(settings: SessionSettings) -> SessionOutcome:
    """Re-test the latest registered version with pipelines/model-testing.yaml (deploy, benchmark, publish).

    Raises:
        LocalRunError: No registered version, or a stand-in did not start.
        PipelineTaskFailedError: A task failed.
    """
    _check_eval_tools(settings)
    with sigterm_as_interrupt(), _services(settings) as services:
        model_id, version_id, uri, name = latest_version(
            services.registry_url, settings.name, settings.model_kind
        )
        params = {
            "registered-model-id": model_id,
            "model-version-id": version_id,
            "model-uri": uri,
            "deploy": "true",
            **_deploy_params(settings, services, name),
        }
        run = _run(settings, "model-testing.yaml", params, services)
        values = {"model_name": name, **_summary(settings, services, run, "benchmark-model")}
        values.update(registered_model_id=model_id, model_version_id=version_id, model_uri=uri)
    return SessionOutcome(run=run, values=values, notes=_kept(settings, services))
