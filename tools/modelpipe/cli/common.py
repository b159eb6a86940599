"""Pieces every subcommand shares: common flags, the registry URL flag, the output type."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from modelpipe.config import MODEL_REGISTRY_URL, RegistrySettings


@dataclass(frozen=True)
class CommandOutput:
    """What a subcommand returns.

    Attributes:
        results: Tekton results (UPPER_SNAKE names, small values), written to ``--results-dir``.
        summary: Extra human-facing ``key: value`` lines (printed, not written as results).
    """

    results: dict[str, str] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)


def common_parser() -> argparse.ArgumentParser:
    """Parent parser with the flags every step shares."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--results-dir",
        type=Path,
        metavar="DIR",
        help="write each Tekton result as a file named after it (e.g. $(results.MODEL_URI.path)'s folder)",
    )
    parent.add_argument("--json", action="store_true", help="print the output as one JSON object")
    parent.add_argument("-v", "--verbose", action="count", default=0, help="debug logging on stderr")
    return parent


def add_step_parser(
    subparsers: argparse._SubParsersAction, name: str, *, help: str, description: str, examples: str
) -> argparse.ArgumentParser:
    """Add a subcommand parser with the common flags and an Examples section in --help."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=f"examples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_parser()],
    )


def add_registry_url_flag(parser: argparse.ArgumentParser) -> None:
    """``--registry-url``, shared by the steps that talk to the Model Registry (flag > env > unset)."""
    parser.add_argument(
        "--registry-url",
        metavar="URL",
        help=f"Model Registry REST base URL (default: env {MODEL_REGISTRY_URL})",
    )


def registry_settings(args: argparse.Namespace) -> RegistrySettings:
    """Registry URL, token and author from the environment, with ``--registry-url`` taking precedence."""
    settings = RegistrySettings.from_env()
    return dataclasses.replace(settings, url=args.registry_url) if args.registry_url else settings


def add_serving_default_flags(parser: argparse.ArgumentParser) -> None:
    """``--default-steps/--default-guidance/--default-size``: settings requests without them get."""
    parser.add_argument(
        "--default-steps",
        default="",
        metavar="N",
        help="inference steps of requests without them (empty: the model's own, e.g. 1 for sd-turbo)",
    )
    parser.add_argument(
        "--default-guidance",
        default="",
        metavar="G",
        help="guidance scale of requests without one (empty: the model's own)",
    )
    parser.add_argument(
        "--default-size",
        default="",
        metavar="WxH",
        help="image size of requests without one, e.g. 512x512 (empty: the model's own)",
    )
