"""modelpipe command line: one subcommand per pipeline step plus the local stand-ins."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback
from collections.abc import Sequence

from modelpipe import __version__
from modelpipe.cli.common import CommandOutput, StepArgumentParser
from modelpipe.config import debug_enabled, log_level
from modelpipe.errors import ModelpipeError
from modelpipe.redaction import RedactingFilter, redact
from modelpipe.results import write_results

# Each module registers one subcommand (or group) through ``register(subparsers)``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "download",
    "check",
    "upload",
    "build",
    "register",
    "deploy",
    "benchmark",
    "evaluate",
    "publish",
    "demo_model",
    "parse_source",
    "registry",
    "local",
)

log = logging.getLogger("modelpipe")


def _command_name(module: str) -> str:
    return module.replace("_", "-")


def _requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if it is one we know."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    known = {_command_name(module) for module in SUBCOMMAND_MODULES}
    return first if first in known else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` only that subcommand's module is imported.

    Every step runs as its own process, so importing all subcommands (registry server, model-registry
    client, huggingface_hub, boto3...) for each one would cost seconds per Tekton step. Other subcommands
    get a bare placeholder parser; ``modelpipe --help`` (no command) still imports them all.
    """
    parser = StepArgumentParser(
        prog="modelpipe",
        description="Take a diffusion model from Hugging Face to a registered, tested KServe endpoint.",
    )
    parser.add_argument("--version", action="version", version=f"modelpipe {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMAND_MODULES:
        if command is None or _command_name(module) == command:
            importlib.import_module(f"modelpipe.cli.{module}").register(subparsers)
        else:
            subparsers.add_parser(_command_name(module))
    return parser


def configure_logging(verbose: int) -> None:
    """Logs go to stderr, secrets masked; -v or MODELPIPE_LOG_LEVEL=DEBUG raises detail."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("modelpipe").setLevel("DEBUG" if verbose else log_level())


def emit(output: CommandOutput, *, as_json: bool) -> None:
    """Print results and summary to stdout: ``key: value`` lines, or one JSON object."""
    values = {**output.results, **output.summary}
    if as_json:
        print(redact(json.dumps(values, indent=2, sort_keys=True)))
    else:
        for key, value in values.items():
            print(redact(f"{key}: {value}"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; known failures print one line and return 1."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_requested_command(argv)).parse_args(argv)
    configure_logging(getattr(args, "verbose", 0))
    try:
        output = args.handler(args)
    except ModelpipeError as err:
        if debug_enabled():
            traceback.print_exc()
        print(redact(f"modelpipe {args.command}: error: {err.one_line()}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"modelpipe {args.command}: interrupted", file=sys.stderr)
        return 130
    if output is not None:
        if getattr(args, "results_dir", None):
            write_results(args.results_dir, output.results)
        emit(output, as_json=getattr(args, "json", False))
    return 0
