"""`modelpipe demo-model`: write a tiny random-weight model (for tests and the local run; no Hub)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from modelpipe.cli.common import CommandOutput, add_step_parser
from modelpipe.demo_models import DEMO_MODELS, FAMILY_BUILDERS
from modelpipe.errors import ConfigError

_VARIANT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SHARD_SIZE = re.compile(r"^\d+(?:[KMG]B)?$")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_step_parser(
        subparsers,
        "demo-model",
        help="write a tiny random-weight demo model of any family (tiny-sd, tiny-sdxl, tiny-flux, ...)",
        description="Write a tiny, seeded, random-weight model with save_pretrained: a text-to-image "
        "pipeline of one family (tiny-sd, tiny-sd2v, tiny-turbo, tiny-sdxl, tiny-sd3, tiny-flux, "
        "tiny-flux-schnell, tiny-pixart, tiny-sana; 64x64 images) or a CLIP model for CLIP scores "
        "(tiny-clip), or a Llama causal LM with a BPE tokenizer and chat template that vLLM serves "
        "(tiny-llm). The same command always writes byte-identical files.",
        examples="  modelpipe demo-model tiny-sd .local/models/tiny-sd\n"
        "  modelpipe demo-model tiny-turbo --variant fp16 .local/models/tiny-turbo-fp16\n"
        "  modelpipe demo-model tiny-flux --max-shard-size 20KB .local/models/tiny-flux-sharded\n"
        "  modelpipe demo-model tiny-clip .local/models/tiny-clip\n"
        "  modelpipe demo-model tiny-llm .local/models/tiny-llm",
    )
    parser.add_argument("kind", choices=sorted(DEMO_MODELS), help="which model to write")
    parser.add_argument("out", type=Path, help="new or empty folder to write into")
    parser.add_argument(
        "--variant",
        metavar="NAME",
        default="",
        help="write only *.NAME.* weights, e.g. fp16 (half precision), like Hub repos without default "
        "weights; empty writes the default weights (tiny-turbo adds fp16 ones, like sd-turbo)",
    )
    parser.add_argument(
        "--max-shard-size",
        metavar="SIZE",
        default="",
        help="shard each weight file at SIZE (e.g. 20KB) with an index file; empty writes one file each",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput:
    options: dict[str, str] = {}
    if args.variant:
        if not _VARIANT.match(args.variant):
            raise ConfigError(f"--variant {args.variant!r} is not a variant name", fix="e.g. --variant fp16")
        options["variant"] = args.variant
    if args.max_shard_size:
        if not _SHARD_SIZE.match(args.max_shard_size):
            raise ConfigError(
                f"--max-shard-size {args.max_shard_size!r} is not a size", fix="e.g. --max-shard-size 20KB"
            )
        options["max_shard_size"] = args.max_shard_size
    if options and args.kind not in FAMILY_BUILDERS:
        raise ConfigError(
            f"--variant and --max-shard-size apply to the family builds, not {args.kind}",
            fix=f"use one of {', '.join(sorted(FAMILY_BUILDERS))}",
        )
    try:
        path = DEMO_MODELS[args.kind](args.out, **options)
    except FileExistsError as err:
        raise ConfigError(str(err), fix="pass a new or empty folder") from err
    return CommandOutput(results={"MODEL_DIR": str(path.resolve())})
