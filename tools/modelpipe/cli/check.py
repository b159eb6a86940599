"""`modelpipe check`: refuse a downloaded model the runtime cannot load, before upload and register."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from modelpipe.cli.common import CommandOutput, add_step_parser
from modelpipe.errors import ConfigError

EXAMPLES = """\
  modelpipe check --model-dir /workspace/model
  modelpipe check --model-dir ./tiny-turbo --variant fp16
"""
_VARIANT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `modelpipe check`."""
    parser = add_step_parser(
        subparsers,
        "check",
        help="check the runtime can load a downloaded model (no weights loaded)",
        description=(
            "Check a downloaded diffusers pipeline the way the runtime will load it, without loading any "
            "weights: the pipeline is a text-to-image one, every component's class exists in the "
            "runtime's diffusers/transformers, its config parses, tokenizers (including sentencepiece-only "
            "T5) and schedulers load, and the chosen variant's weight files (or all shards of an index) "
            "are present with readable safetensors headers. Fails naming the component. "
            "Result: PIPELINE_CLASS."
        ),
        examples=EXAMPLES,
    )
    parser.add_argument("--model-dir", type=Path, required=True, metavar="DIR", help="the downloaded model")
    parser.add_argument(
        "--variant",
        default="",
        metavar="NAME",
        help="weight variant to check, e.g. fp16 (empty: the one manifest.json records)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput:
    """Check and report PIPELINE_CLASS."""
    from modelpipe.steps.check import check_model  # imports diffusers/transformers

    if args.variant and not _VARIANT.match(args.variant):
        raise ConfigError(f"--variant {args.variant!r} is not a variant name", fix="e.g. --variant fp16")
    if not args.model_dir.is_dir():
        raise ConfigError(f"--model-dir {args.model_dir} is not a folder")
    result = check_model(model_dir=args.model_dir, variant=args.variant or None)
    return CommandOutput(
        results={"PIPELINE_CLASS": result.pipeline_class},
        summary={"components": ", ".join(result.components), "variant": result.variant or "default"},
    )
