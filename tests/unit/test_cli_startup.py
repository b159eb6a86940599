"""A step's process imports only what its own subcommand needs (every Tekton step is a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from modelpipe.cli import SUBCOMMAND_MODULES, build_parser

HEAVY = ("torch", "diffusers", "transformers", "model_registry", "fastapi", "kubernetes", "matplotlib")


def _modules_loaded_for(argv: list[str], watched: tuple[str, ...] = HEAVY) -> set[str]:
    probe = (
        "import json, sys\n"
        "from modelpipe.cli import build_parser, _requested_command\n"
        f"argv = {argv!r}\n"
        "build_parser(_requested_command(argv))\n"
        f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("command", ["upload", "download", "build", "demo-model"])
def test_light_subcommands_do_not_import_heavy_libraries(command: str) -> None:
    assert _modules_loaded_for([command, "--help"]) == set()


def test_local_parser_does_not_import_boto3() -> None:
    # `local run` drives the Tekton runner only; boto3 belongs to `local s3` and the session.
    assert _modules_loaded_for(["local", "run", "--help"], ("boto3", *HEAVY)) == set()


def test_a_lazy_parser_still_parses_its_own_flags() -> None:
    args = build_parser("upload").parse_args(["upload", "--model-dir", "d", "--model-uri", "s3://b/p"])
    assert (args.command, args.model_uri) == ("upload", "s3://b/p")


def test_the_full_parser_lists_every_subcommand() -> None:
    help_text = build_parser().format_help()
    for module in SUBCOMMAND_MODULES:
        assert module.replace("_", "-") in help_text
