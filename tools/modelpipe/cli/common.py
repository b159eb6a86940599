"""Pieces every subcommand shares: the parser class, common flags, the registry URL flag, the output type."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpipe.config import (
    DATA_CONNECTION_PREFIX,
    MODEL_REGISTRY_URL,
    RegistrySettings,
    S3Settings,
    storage_key_for,
)

_LIST_NARGS = ("*", "+")


class StepArgumentParser(argparse.ArgumentParser):
    """ArgumentParser where an empty value means "the flag's default", for every optional flag.

    Tekton passes every param to the step script, unset ones as "" (and empty arrays as no values), so
    the scripts can pass each ``PARAM_*`` unconditionally: ``--steps ""`` is ``--steps`` left out,
    ``--labels`` with no (or only empty) values is ``--labels`` left out. A required flag given "" is a
    usage error naming the flag. This is the one place that rule lives.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No prefix matching: a renamed or misspelt flag (--out) must not silently become another one
        # (--output-tokens).
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Only plain stores: an "append" flag given "" would append its whole default.
        if action.option_strings and isinstance(action, argparse._StoreAction):
            given = [text for text in arg_strings if text != "--"]
            is_list = action.nargs in _LIST_NARGS
            if (is_list and not any(given)) or (not is_list and given == [""]):
                if action.required:
                    self.error(f"argument {'/'.join(action.option_strings)}: must not be empty")
                if isinstance(action.default, str):
                    return self._get_value(action, action.default)
                return action.default
            if is_list:
                arg_strings = [text for text in arg_strings if text != ""]
        return super()._get_values(action, arg_strings)


def parse_bool(text: str) -> bool:
    """``true``/``false`` (any case) for flags that Tekton params set: the one boolean flag parser."""
    lowered = text.strip().lower()
    if lowered not in {"true", "false"}:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return lowered == "true"


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


def add_data_connection_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, purpose: str
) -> None:
    """``--data-connection NAME``: the OpenShift AI data connection (Secret ``aws-connection-NAME``)."""
    parser.add_argument(
        "--data-connection",
        metavar="NAME",
        help=f"data connection name (Secret {DATA_CONNECTION_PREFIX}NAME): {purpose}",
    )


def s3_settings(args: argparse.Namespace) -> S3Settings:
    """S3 connection from the AWS_* environment, naming ``--data-connection`` in credential errors."""
    return dataclasses.replace(S3Settings.from_env(), data_connection=args.data_connection)


def storage_key(args: argparse.Namespace) -> str | None:
    """The storage key (data connection Secret name) for ``--data-connection``, or None when unset."""
    return storage_key_for(args.data_connection) if args.data_connection else None


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
