"""`modelpipe local run|import|test|s3`: the pipeline YAML on one machine, against embedded stand-ins."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelpipe.cli.common import CommandOutput, add_serving_default_flags, add_step_parser
from modelpipe.cli.local_s3 import add_s3_parser
from modelpipe.config import local_state_dir
from modelpipe.errors import ConfigError
from modelpipe.model_kinds import parse_model_kind

if TYPE_CHECKING:
    from modelpipe.local.session import SessionSettings

RUN_EXAMPLES = """\
  modelpipe local run pipelines/model-import.yaml -p model-name=tiny-sd -p source=file:///models/tiny \\
      --workspace shared=/tmp/ws
  modelpipe local run my-pipeline.yaml --tasks-dir my-tasks/ --secrets-file .env -v"""
IMPORT_EXAMPLES = """\
  modelpipe local import                 # tiny demo model and tiny CLIP; services stopped after
  modelpipe local import --source hf://segmind/tiny-sd --model-name tiny-sd --version-name v1 --keep-running
  MODELPIPE_LOCAL_DIR=/tmp/state modelpipe local import   # keep state outside .local/"""
TEST_EXAMPLES = """\
  modelpipe local test                      # re-test the latest registered version
  modelpipe local test --model-name tiny-sd --keep-running"""


def _pair(text: str) -> tuple[str, Path]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected name=DIR, got {text!r}")
    return name, Path(value)


def _add_state_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(local_state_dir()),
        help="local state: S3 data, registry.db, runs/, models/ (default: $MODELPIPE_LOCAL_DIR or .local)",
    )
    parser.add_argument(
        "--secrets-file", type=Path, help="KEY=VALUE file for secretKeyRef/configMapKeyRef keys"
    )


def _add_session_flags(parser: argparse.ArgumentParser) -> None:
    _add_state_flags(parser)
    # Flag names are the pipeline params they set (one name everywhere); dests keep the session's fields.
    parser.add_argument("--model-name", dest="name", help="registered model name (default: from the source)")
    parser.add_argument(
        "--model-kind",
        default="",
        metavar="KIND",
        help="text-to-image (default: tiny demo diffusion model, CLIP benchmark) or text-generation "
        "(default: tiny LLM on vLLM, lm-eval offline tasks, guidellm); the run scripts' --kind llm",
    )
    parser.add_argument("--keep-running", action="store_true", help="leave S3, registry and runtime running")
    parser.add_argument(
        "--clip-model", help="CLIP model for the benchmark: hf://, s3:// or DIR (default: tiny CLIP)"
    )
    parser.add_argument("--s3-port", type=int, default=0, help="SeaweedFS S3 port (default: a free port)")
    parser.add_argument(
        "--registry-port", type=int, default=0, help="registry server port (default: a free port)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``local`` group and its subcommands."""
    group = subparsers.add_parser("local", help="run the pipeline on this machine (no cluster)")
    sub = group.add_subparsers(dest="local_command", metavar="SUBCOMMAND", required=True)

    run = add_step_parser(
        sub,
        "run",
        help="run a Tekton Pipeline's YAML on the host",
        description="Execute a tekton.dev/v1 Pipeline with Tasks from --tasks-dir; steps run on the host "
        "(images are not pulled; the venv's bin is first on PATH). Step logs stream prefixed [task/step] "
        "and are kept under the run folder. Unsupported Tekton features are rejected by name.",
        examples=RUN_EXAMPLES,
    )
    run.add_argument("pipeline", type=Path, metavar="PIPELINE.yaml")
    run.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline param"
    )
    run.add_argument("--workspace", action="append", type=_pair, default=[], metavar="NAME=DIR")
    run.add_argument(
        "--tasks-dir", type=Path, help="folder of Task YAML (default: tasks/ next to pipelines/)"
    )
    run.add_argument("--run-dir", type=Path, help="logs and results (default: STATE_DIR/runs/<run name>)")
    run.add_argument(
        "--source-dir", type=Path, help="working tree the git-clone equivalent copies (default: repo)"
    )
    _add_state_flags(run)
    run.set_defaults(handler=run_command)

    imp = add_step_parser(
        sub,
        "import",
        help="the whole model-import pipeline locally (S3, registry, runtime stand-ins)",
        description="Start SeaweedFS and the registry server with state under --state-dir, then run "
        "pipelines/model-import.yaml through the local runner and print a summary.",
        examples=IMPORT_EXAMPLES,
    )
    imp.add_argument("--source", help="hf://ORG/REPO[@REV] or file:///DIR (default: the tiny demo model)")
    imp.add_argument(
        "--version-name",
        dest="version",
        help="model version name (default: @REV of an hf:// source, else v1)",
    )
    imp.add_argument(
        "--image",
        dest="image_repo",
        metavar="REPO",
        help="push the runtime image here (e.g. 127.0.0.1:5000/diffusers-runtime); build runs only with "
        "buildah, the base image in local storage and this flag",
    )
    imp.add_argument(
        "--variant", default="", metavar="NAME", help="weight variant to import, e.g. fp16 (empty: default)"
    )
    add_serving_default_flags(imp)
    _add_session_flags(imp)
    imp.set_defaults(handler=import_command)

    test = add_step_parser(
        sub,
        "test",
        help="re-test the latest registered version locally (model-testing pipeline)",
        description="Start the stand-ins on the existing state and run pipelines/model-testing.yaml "
        "for the latest registered version.",
        examples=TEST_EXAMPLES,
    )
    _add_session_flags(test)
    test.set_defaults(handler=test_command)

    # `modelpipe local s3` (lead, modelpipe.local.s3) registers below this line.
    add_s3_parser(sub)


def run_command(args: argparse.Namespace) -> CommandOutput:
    from modelpipe.local.tekton.api import run_pipeline_cli

    if not args.pipeline.is_file():
        raise ConfigError(f"pipeline file {args.pipeline} not found")
    result = run_pipeline_cli(
        pipeline_path=args.pipeline,
        raw_params=args.param,
        workspaces=dict(args.workspace),
        tasks_dir=args.tasks_dir,
        state_dir=args.state_dir,
        run_dir=args.run_dir,
        source_dir=args.source_dir,
        secrets_file=args.secrets_file,
        environ=os.environ,
        venv_bin=Path(sys.executable).parent,
    )
    return CommandOutput(
        results={k.upper().replace("-", "_"): v for k, v in result.result_strings().items()},
        summary={"run": result.name, "status": result.status, "logs": str(result.run_dir)},
    )


def session_settings(args: argparse.Namespace) -> SessionSettings:
    """Settings from the `local import|test` flags; the repository is the git tree around the cwd."""
    from modelpipe.local.session import SessionSettings
    from modelpipe.local.tekton.api import default_source_dir

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
        environ=os.environ,
        venv_bin=Path(sys.executable).parent,
        secrets_file=args.secrets_file,
        name=args.name,
        keep_running=args.keep_running,
        clip_model=args.clip_model,
        s3_port=args.s3_port or None,
        registry_port=args.registry_port or None,
        image_repo=getattr(args, "image_repo", None),
        model_kind=parse_model_kind(args.model_kind),
    )


def import_command(args: argparse.Namespace) -> CommandOutput:
    from modelpipe.local.session import import_model

    outcome = import_model(
        session_settings(args),
        source=args.source,
        version=args.version,
        variant=args.variant,
        serving_defaults={
            "default-steps": args.default_steps,
            "default-guidance": args.default_guidance,
            "default-size": args.default_size,
        },
    )
    return CommandOutput(summary=outcome.summary())


def test_command(args: argparse.Namespace) -> CommandOutput:
    from modelpipe.local.session import test_model

    outcome = test_model(session_settings(args))
    return CommandOutput(summary=outcome.summary())
