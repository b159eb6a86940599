"""`modelpipe local import|test`: start the stand-ins under one state folder and run our pipelines."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from modelpipe.errors import ConfigError, LocalRunError
from modelpipe.local.tekton.api import default_source_dir, run_pipeline_cli
from modelpipe.local.tekton.parsing import load_tasks
from modelpipe.local.tekton.runner import PipelineRunResult
from modelpipe.redaction import register_secret

log = logging.getLogger(__name__)

BUCKET = "modelpipe"
DATA_CONNECTION = "modelpipe"
AUTHOR = "modelpipe-local"
REGISTRY_START_SECONDS = 60.0
# Small enough for the whole local import to finish in well under 3 minutes on 2 cores.
BENCHMARK_PARAMS = {
    "benchmark-concurrency": "1,2",
    "benchmark-requests": "4",
    "benchmark-steps": "2",
    "benchmark-size": "64x64",
}
SERVICE_PIDS_FILE = "services.json"


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


def session_settings(
    args: argparse.Namespace, *, environ: Mapping[str, str], venv_bin: Path
) -> SessionSettings:
    """Settings from the `local import|test` flags; the repository is the git tree around the cwd."""
    repo_dir = default_source_dir(Path.cwd() / "pipelines" / "model-import.yaml")
    if not (repo_dir / "pipelines" / "model-import.yaml").is_file():
        raise ConfigError(
            f"pipelines/model-import.yaml not found under {repo_dir}", fix="run from the repository root"
        )
    if args.secrets_file is not None and not args.secrets_file.is_file():
        raise ConfigError(f"secrets file {args.secrets_file} not found")
    return SessionSettings(
        repo_dir=repo_dir,
        state_dir=args.state_dir.resolve(),
        environ=environ,
        venv_bin=venv_bin,
        secrets_file=args.secrets_file,
        name=args.name,
        keep_running=args.keep_running,
        clip_model=args.clip_model,
        s3_port=args.s3_port or None,
        registry_port=args.registry_port or None,
        image_repo=getattr(args, "image_repo", None),
    )


@dataclass(frozen=True)
class SessionOutcome:
    """What a local import or test produced, for the printed summary."""

    run: PipelineRunResult
    values: Mapping[str, str] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, str]:
        return {**self.values, **self.notes, "run": self.run.name, "logs": str(self.run.run_dir)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _credentials(state_dir: Path) -> tuple[str, str]:
    """The local S3 key pair, made once and kept (0600) so the data folder stays usable."""
    path = state_dir / "s3-credentials.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
    else:
        data = {
            "access_key_id": f"local-{secrets.token_hex(4)}",
            "secret_access_key": secrets.token_urlsafe(24),
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps(data), encoding="utf-8")
    register_secret(data["secret_access_key"])
    return data["access_key_id"], data["secret_access_key"]


class RegistryProcess:
    """The local Model Registry server as a subprocess (SQLite in the state folder)."""

    def __init__(self, db: Path, port: int | None, python: str, log_path: Path) -> None:
        self.db, self.python, self.log_path = db, python, log_path
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start and wait until the API answers.

        Raises:
            LocalRunError: The server exits or does not answer within a minute.
        """
        command = [self.python, "-m", "modelpipe.local.registry", "--host", "127.0.0.1",
                   "--port", str(self.port),
                   "--db", str(self.db)]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "MODEL_REGISTRY_TOKEN"}
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        probe = f"{self.url}/api/model_registry/v1/registered_models?pageSize=1"
        deadline = time.monotonic() + REGISTRY_START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LocalRunError(
                    f"registry server exited with code {self._process.returncode}", fix=f"see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(probe, timeout=1.0):
                    log.info("registry server on %s, data in %s", self.url, self.db)
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise LocalRunError(f"registry server did not answer on {self.url}", fix=f"see {self.log_path}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Services:
    """The running stand-ins of one session."""

    s3_env: dict[str, str]
    registry_url: str
    describe: dict[str, str]
    pids: list[int]


def _stop_command(state_dir: Path, pids: list[int]) -> str:
    return (
        f"kill {' '.join(map(str, pids))}; "
        f"modelpipe deploy --target local --stop --state-dir {state_dir / 'runtime'}"
    )


def _check_no_leftover(state_dir: Path) -> None:
    path = state_dir / SERVICE_PIDS_FILE
    if not path.is_file():
        return
    pids = [int(p) for p in json.loads(path.read_text(encoding="utf-8")).get("pids", [])]
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    if alive:
        raise LocalRunError(
            f"services of an earlier --keep-running session still use {state_dir} (pids {alive})",
            fix=f"stop them: {_stop_command(state_dir, alive)}",
        )
    path.unlink()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so a killed session still stops its steps and services."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def running_services(settings: SessionSettings) -> Iterator[Services]:
    """SeaweedFS and the registry server with state under ``settings.state_dir``; stopped on exit unless kept.

    Raises:
        LocalRunError: A service does not start, or an earlier kept session still runs on this state.
    """
    from modelpipe.local.s3 import S3Credentials, SeaweedS3

    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    _check_no_leftover(state)
    key_id, secret = _credentials(state)
    s3 = SeaweedS3(state / "s3", S3Credentials(key_id, secret), bucket=BUCKET, port=settings.s3_port)
    registry = RegistryProcess(
        state / "registry.db", settings.registry_port, sys.executable, state / "registry.log"
    )
    kept = False
    try:
        s3.start()
        registry.start()
        services = Services(
            s3_env=s3.data_connection_env(),
            registry_url=registry.url,
            describe={"s3_endpoint": s3.endpoint_url, "registry_url": registry.url},
            # SeaweedS3 exposes no pid; its process handle is the only way to name it for a later stop.
            pids=[p for p in (registry.pid, s3._process.pid if s3._process else None) if p],
        )
        yield services
        kept = settings.keep_running
    finally:
        if kept:
            pids = services.pids
            (state / SERVICE_PIDS_FILE).write_text(json.dumps({"pids": pids}), encoding="utf-8")
            log.info(
                "services keep running (pids %s); S3 %s, registry %s", pids, s3.endpoint_url, registry.url
            )
        else:
            _stop_runtime(state / "runtime")
            registry.stop()
            s3.stop()


def _stop_runtime(runtime_dir: Path) -> None:
    from modelpipe.local.runtime_process import stop_local_runtime

    if runtime_dir.is_dir() and stop_local_runtime(runtime_dir):
        log.info("stopped the local runtime recorded in %s", runtime_dir)


def _base_images(containerfile: str) -> list[str]:
    """External images the Containerfile starts FROM (ARG defaults filled in; stages and scratch left out)."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases = []
    for line in containerfile.splitlines():
        arg = re.match(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line)
        if arg:
            args.setdefault(arg.group(1), arg.group(2).strip("\"'"))
            continue
        start = re.match(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if not start:
            continue
        image = re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), start.group(1)
        )
        if image != "scratch" and image not in stages:
            bases.append(image)
        if start.group(2):
            stages.add(start.group(2))
    return bases


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
    bases = _base_images(containerfile.read_text(encoding="utf-8"))
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
        return False, "no --image-repo to push the runtime image to"
    return True, "buildah and the base image are available"


def _model_source(settings: SessionSettings, source: str | None) -> tuple[str, str]:
    """The source URI and a default model name: the tiny demo model unless a source is given."""
    if source is None:
        from modelpipe.demo_models import write_tiny_sd

        folder = settings.state_dir / "models" / "tiny-sd"
        if not (folder / "model_index.json").is_file():
            log.info("writing the tiny demo model to %s", folder)
            write_tiny_sd(folder)
        return folder.resolve().as_uri(), "tiny-sd"
    if source.startswith("hf://"):
        name = source.removeprefix("hf://").split("@")[0].rstrip("/").split("/")[-1]
    elif source.startswith("file://"):
        name = Path(source.removeprefix("file://")).name
    else:
        raise ConfigError(f"--source {source!r} must start with hf:// or file://")
    return source, name


def _clip_model(settings: SessionSettings) -> str:
    if settings.clip_model:
        return settings.clip_model
    from modelpipe.demo_models import write_tiny_clip

    folder = settings.state_dir / "models" / "tiny-clip"
    if not (folder / "config.json").is_file():
        write_tiny_clip(folder)
    return str(folder.resolve())


def dns_label(name: str) -> str:
    """``name`` as a DNS-1035 label (InferenceService names): lowercase, dashes, starts with a letter."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    label = label if label[:1].isalpha() else f"m-{label}"
    return label[:63].rstrip("-") or "model"


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


def _deploy_params(settings: SessionSettings, services: Services, name: str) -> dict[str, str]:
    return {
        "deploy-target": "local",
        "deploy-name": dns_label(name),
        "deploy-port": str(_free_port()),
        "deploy-state-dir": str(settings.state_dir / "runtime"),
        "registry-url": services.registry_url,
        "data-connection": DATA_CONNECTION,
        "clip-model": _clip_model(settings),
        **BENCHMARK_PARAMS,
    }


def _task_result(run: PipelineRunResult, task: str, name: str) -> str:
    status = run.tasks.get(task)
    value = status.results.get(name) if status else None
    return value if isinstance(value, str) else "-"


def _report_copy(settings: SessionSettings, services: Services, report_uri: str, run: str) -> str:
    """Download the report folder (HTML and its images) beside the run's logs; the local HTML path."""
    import boto3

    if not report_uri.startswith("s3://"):
        return "-"
    bucket, _, key = report_uri.removeprefix("s3://").partition("/")
    prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    dest_dir = settings.state_dir / "reports" / run
    env = services.s3_env
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_S3_ENDPOINT"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = dest_dir / obj["Key"].removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))
    return str(dest_dir / key.removeprefix(prefix))


def _summary(
    settings: SessionSettings, services: Services, run: PipelineRunResult, bench: str
) -> dict[str, str]:
    report_uri = _task_result(run, "publish-results", "REPORT_URI")
    return {
        "registered_model_id": _task_result(run, "register-model", "REGISTERED_MODEL_ID"),
        "model_version_id": _task_result(run, "register-model", "MODEL_VERSION_ID"),
        "model_uri": _task_result(run, "upload-model", "MODEL_URI"),
        "endpoint": _task_result(run, "deploy-model", "ENDPOINT_URL"),
        "clip_score": _task_result(run, bench, "CLIP_SCORE"),
        "p50_seconds": _task_result(run, bench, "P50_SECONDS"),
        "p95_seconds": _task_result(run, bench, "P95_SECONDS"),
        "images_per_second": _task_result(run, bench, "IMAGES_PER_SECOND"),
        "report_uri": report_uri,
        "report_path": _report_copy(settings, services, report_uri, run.name),
    }


def import_model(settings: SessionSettings, *, source: str | None, version: str | None) -> SessionOutcome:
    """Run pipelines/model-import.yaml locally: download, upload, (build), register, deploy, bench, publish.

    Raises:
        LocalRunError: A stand-in did not start.
        PipelineTaskFailedError: A task failed (named, with step, exit code and log).
        TektonSpecError, UnsupportedTektonFeatureError: The pipeline YAML cannot run locally.
    """
    uri, default_name = _model_source(settings, source)
    name = settings.name or default_name
    version = version or (uri.split("@", 1)[1] if uri.startswith("hf://") and "@" in uri else "v1")
    can_build, why = build_decision(
        settings.repo_dir, settings.repo_dir / "tasks", settings.environ, settings.image_repo
    )
    log.info("build-runtime %s: %s", "runs" if can_build else "skipped", why)
    with _sigterm_as_interrupt(), running_services(settings) as services:
        params = {
            "model-source": uri,
            "model-name": name,
            "version-name": version,
            "s3-bucket": BUCKET,
            "build-image": "true" if can_build else "false",
            **({"runtime-image-repo": settings.image_repo} if can_build and settings.image_repo else {}),
            "deploy": "true",
            **_deploy_params(settings, services, name),
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
        "stop_with": _stop_command(settings.state_dir, services.pids),
    }


def latest_version(registry_url: str, name: str | None) -> tuple[str, str, str, str]:
    """(registered model id, version id, artifact URI, model name) of the most recently updated version.

    Raises:
        LocalRunError: Nothing (or nothing named ``name``) is registered.
    """
    from modelpipe.config import RegistrySettings
    from modelpipe.registry_client import connect_registry

    registry = connect_registry(RegistrySettings(url=registry_url, token=None, author=AUTHOR))
    best = None
    for model in registry.get_registered_models():
        if name is not None and model.name != name:
            continue
        for version in registry.get_model_versions(model.name):
            stamp = int(version.last_update_time_since_epoch or 0)
            if best is None or stamp > best[0]:
                best = (stamp, model, version)
    if best is None:
        raise LocalRunError(
            f"no registered {'model ' + name if name else 'model'} in the local registry",
            fix="run ./run-model-import.sh --local first",
        )
    _, model, version = best
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
    with _sigterm_as_interrupt(), running_services(settings) as services:
        model_id, version_id, uri, name = latest_version(services.registry_url, settings.name)
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
