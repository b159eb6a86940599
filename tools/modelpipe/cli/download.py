"""`modelpipe download`: fetch a diffusers pipeline or a language model with a checksummed manifest."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from modelpipe.cli.common import CommandOutput, add_step_parser
from modelpipe.config import hf_endpoint, hf_token
from modelpipe.errors import ConfigError
from modelpipe.model_kinds import MODEL_KINDS, TEXT_GENERATION, parse_model_kind
from modelpipe.sources import parse_source
from modelpipe.steps.download import download_model

EXAMPLES = """\
  modelpipe download --source hf://stabilityai/sd-turbo --revision main --model-dir /workspace/model \\
      --variant fp16
  modelpipe download --source hf://segmind/tiny-sd@cad0bd7 --model-dir ./model --results-dir /tekton/results
  modelpipe download --source file:///mnt/models/tiny-sd --model-dir ./model      # disconnected clusters
  modelpipe download --source hf://Qwen/Qwen2.5-0.5B-Instruct --model-kind text-generation --model-dir ./llm
"""
_VARIANT = re.compile(r"^[A-Za-z0-9_]+$")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `modelpipe download`."""
    parser = add_step_parser(
        subparsers,
        "download",
        help="download a diffusers model with a checksummed manifest",
        description=(
            "Resolve the revision to a commit, fetch only what a diffusers pipeline needs (model_index.json, "
            "configs, tokenizer and scheduler files, one safetensors set per component), keep files already "
            "present and verified, and write MODEL_DIR/manifest.json last. HF_TOKEN (gated/private repos) "
            "and HF_ENDPOINT (mirrors) come from the environment. "
            "Results: SOURCE_REVISION, MANIFEST_SHA256, TOTAL_BYTES."
        ),
        examples=EXAMPLES,
    )
    parser.add_argument(
        "--source",
        required=True,
        metavar="URI",
        help="hf://ORG/REPO[@REV] or file:///ABS/DIR (a diffusers folder)",
    )
    parser.add_argument("--revision", metavar="REV", help="branch, tag or commit for hf:// (default main)")
    parser.add_argument(
        "--model-dir", type=Path, required=True, metavar="DIR", help="folder to write the model to"
    )
    parser.add_argument("--variant", metavar="NAME", help="prefer this weight variant, e.g. fp16")
    parser.add_argument(
        "--model-kind",
        default="",
        metavar="KIND",
        help=f"{' or '.join(MODEL_KINDS)} (default text-to-image): a diffusers pipeline, or a "
        "transformers causal LM (config, generation config, tokenizer, chat template, safetensors); "
        "a source of the other kind is refused",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput:
    """Check flags, download, and report SOURCE_REVISION / MANIFEST_SHA256 / TOTAL_BYTES."""
    if args.variant is not None and not _VARIANT.match(args.variant):
        raise ConfigError(f"--variant {args.variant!r} is not a variant name", fix="e.g. --variant fp16")
    if args.model_dir.exists() and not args.model_dir.is_dir():
        raise ConfigError(f"--model-dir {args.model_dir} exists and is not a folder")
    model_kind = parse_model_kind(args.model_kind)
    if args.variant and model_kind == TEXT_GENERATION:
        raise ConfigError(
            "--variant applies to text-to-image models only", fix="drop --variant for text-generation"
        )
    source = parse_source(args.source, args.revision)
    result = download_model(
        source=source,
        dest=args.model_dir,
        variant=args.variant,
        token=hf_token(),
        endpoint=hf_endpoint(),
        model_kind=model_kind,
    )
    return CommandOutput(
        results={
            "SOURCE_REVISION": result.revision,
            "MANIFEST_SHA256": result.manifest_sha256,
            "TOTAL_BYTES": str(result.total_bytes),
        },
        summary={
            "model_dir": str(result.model_dir),
            "model_kind": result.model_kind,
            "files": str(result.files),
            "bytes_fetched": str(result.bytes_fetched),
            "bytes_reused": str(result.bytes_reused),
            "seconds": f"{result.seconds:.2f}",
        },
    )
