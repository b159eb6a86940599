"""`modelpipe demo-model`: write a tiny random-weight model (for tests and the local run; no Hub)."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelpipe.cli.common import CommandOutput, add_step_parser
from modelpipe.demo_models import DEMO_MODELS
from modelpipe.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_step_parser(
        subparsers,
        "demo-model",
        help="write a tiny random-weight demo model (tiny-sd, tiny-clip or tiny-llm)",
        description="Write a tiny, seeded, random-weight model with save_pretrained: a Stable Diffusion "
        "pipeline generating 64x64 images (tiny-sd), a CLIP model for CLIP scores (tiny-clip) or a "
        "Llama causal LM with a BPE tokenizer and chat template that vLLM serves (tiny-llm). "
        "The same command always writes byte-identical files.",
        examples="  modelpipe demo-model tiny-sd .local/models/tiny-sd\n"
        "  modelpipe demo-model tiny-clip .local/models/tiny-clip\n"
        "  modelpipe demo-model tiny-llm .local/models/tiny-llm",
    )
    parser.add_argument("kind", choices=sorted(DEMO_MODELS), help="which model to write")
    parser.add_argument("out", type=Path, help="new or empty folder to write into")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput:
    try:
        path = DEMO_MODELS[args.kind](args.out)
    except FileExistsError as err:
        raise ConfigError(str(err), fix="pass a new or empty folder") from err
    return CommandOutput(results={"MODEL_DIR": str(path.resolve())})
