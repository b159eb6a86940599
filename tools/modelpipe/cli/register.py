"""`modelpipe register`: register the model, its version and model artifact in the Model Registry."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelpipe.cli.common import (
    CommandOutput,
    add_data_connection_flag,
    add_registry_url_flag,
    add_serving_default_flags,
    add_step_parser,
    registry_settings,
    storage_key,
)
from modelpipe.config import vllm_runtime_image
from modelpipe.model_kinds import MODEL_KINDS, parse_model_kind
from modelpipe.serving_defaults import parse_serving_defaults
from modelpipe.steps.register import register_model

EXAMPLES = """\
  export MODEL_REGISTRY_URL=https://registry-rest.apps.example.com MODEL_REGISTRY_TOKEN=$(oc whoami -t)
  modelpipe register --model-name tiny-sd --version-name 1.0.0-3f2a9c1 \\
      --model-uri s3://models/tiny-sd/3f2a9c1 --model-dir /workspace/model \\
      --runtime-image quay.io/acme/diffusers-runtime@sha256:<64 hex> --data-connection models \\
      --pipeline-run model-import-x7k2 --results-dir /tekton/results --labels text-to-image demo
  modelpipe register --registry-url http://127.0.0.1:8080 --model-name tiny-sd --version-name dev \\
      --model-uri s3://models/tiny-sd --model-dir ./tiny-sd
  # a distilled model: requests without settings get 1 step at guidance 0
  modelpipe register --model-name sd-turbo --version-name 1 --model-uri s3://models/sd-turbo/1 \\
      --model-dir ./sd-turbo --default-steps 1 --default-guidance 0 --default-size 512x512
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``register`` subcommand."""
    parser = add_step_parser(
        subparsers,
        "register",
        help="register model, version and artifact in the Model Registry (idempotent)",
        description="Register the model, its version and model artifact (format diffusers, or vLLM for "
        "text-generation models; the data connection's Secret aws-connection-NAME as storage key) with the "
        "model-registry client. A re-run "
        "with the same artifact updates the same version; the same version name with a different artifact "
        "is refused. Token: MODEL_REGISTRY_TOKEN. "
        "Results: REGISTERED_MODEL_ID, MODEL_VERSION_ID, MODEL_ARTIFACT_ID.",
        examples=EXAMPLES,
    )
    parser.add_argument("--model-name", required=True, metavar="NAME", help="registered model name")
    parser.add_argument(
        "--version-name", required=True, metavar="NAME", help="version name, unique per model"
    )
    parser.add_argument("--model-uri", required=True, metavar="s3://BUCKET/PREFIX", help="where the model is")
    parser.add_argument(
        "--model-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="the folder `modelpipe download` wrote (its manifest.json is read)",
    )
    parser.add_argument(
        "--runtime-image",
        metavar="REPO@sha256:...",
        help="diffusers runtime image, pinned by digest, recorded on text-to-image versions "
        "(text-generation versions record VLLM_RUNTIME_IMAGE, the vLLM ServingRuntime's image)",
    )
    add_data_connection_flag(parser, purpose="recorded as the artifact's storage key")
    parser.add_argument("--description", metavar="TEXT", help="version description")
    parser.add_argument(
        "--labels",
        nargs="*",
        default=None,
        metavar="LABEL",
        help="dashboard labels (default: the model kind)",
    )
    parser.add_argument(
        "--model-kind",
        default="",
        metavar="KIND",
        help=f"{' or '.join(MODEL_KINDS)}; checked against the manifest (default: the manifest's kind)",
    )
    parser.add_argument("--pipeline-run", metavar="NAME", help="PipelineRun name recorded on the version")
    add_serving_default_flags(parser)
    add_registry_url_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput:
    """Register and map the ids to REGISTERED_MODEL_ID / MODEL_VERSION_ID / MODEL_ARTIFACT_ID."""
    result = register_model(
        registry=registry_settings(args),
        model_name=args.model_name,
        version_name=args.version_name,
        model_uri=args.model_uri,
        manifest=args.model_dir / "manifest.json",
        runtime_image=args.runtime_image,
        vllm_runtime_image=vllm_runtime_image(),
        storage_key=storage_key(args),
        description=args.description,
        labels=tuple(args.labels) if args.labels else None,
        pipeline_run=args.pipeline_run,
        model_kind=parse_model_kind(args.model_kind) if args.model_kind else None,
        serving_defaults=parse_serving_defaults(
            steps=args.default_steps, guidance=args.default_guidance, size=args.default_size
        ),
    )
    return CommandOutput(
        results={
            "REGISTERED_MODEL_ID": result.registered_model_id,
            "MODEL_VERSION_ID": result.model_version_id,
            "MODEL_ARTIFACT_ID": result.model_artifact_id,
        },
        summary={"action": result.action, "registry_api": result.api_version},
    )
