"""`modelpipe registry serve`: the local Model Registry REST server (SQLite) in the foreground.

``python -m modelpipe.cli.registry`` runs the same command without loading every other subcommand
(what the local session and the test fixtures start).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modelpipe.cli import configure_logging
from modelpipe.cli.common import CommandOutput, add_step_parser
from modelpipe.config import MODEL_REGISTRY_TOKEN, RegistrySettings
from modelpipe.errors import ConfigError, ModelpipeError
from modelpipe.local.registry import API_VERSIONS, serve_registry
from modelpipe.redaction import redact, register_secret


def api_versions(value: str) -> tuple[str, ...]:
    """Parse ``v1,v1alpha3`` (argparse type): known versions only, at least one."""
    versions = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [v for v in versions if v not in API_VERSIONS]
    if unknown or not versions:
        raise argparse.ArgumentTypeError(
            f"unknown API version(s) {', '.join(unknown) or '(none)'}; choose from {','.join(API_VERSIONS)}"
        )
    return versions


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register the `registry` group and its `serve` subcommand."""
    group = subparsers.add_parser("registry", help="local Kubeflow Model Registry server")
    group_subparsers = group.add_subparsers(dest="registry_command", metavar="SUBCOMMAND", required=True)
    parser = add_step_parser(
        group_subparsers,
        "serve",
        help="serve the Model Registry REST API from a SQLite file",
        description="Serve the Kubeflow Model Registry REST API (/api/model_registry/v1 and /v1alpha3) "
        "backed by a SQLite file, plus a read-only overview page at /. Runs until SIGTERM or Ctrl+C; the "
        f"data stays in --db. With a token (--token-file, {MODEL_REGISTRY_TOKEN} or --token) every request "
        "needs 'Authorization: Bearer TOKEN'. A --token value is visible to every local user in the process "
        f"list: prefer --token-file or {MODEL_REGISTRY_TOKEN}.",
        examples="  modelpipe registry serve --port 8080 --db .local/registry.db\n"
        "  modelpipe registry serve --port 8080 --db .local/registry.db --token-file ~/.registry-token\n"
        "  modelpipe registry serve --port 8080 --db .local/registry.db --api-versions v1alpha3",
    )
    add_serve_arguments(parser)
    parser.set_defaults(handler=run)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `registry serve` (shared with the lean ``main`` entry)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument("--db", type=Path, required=True, help="SQLite database file (created when missing)")
    token = parser.add_mutually_exclusive_group()
    token.add_argument(
        "--token",
        default=None,
        help="required bearer token; NOTE: command-line arguments are visible to other local users "
        f"(ps, /proc), so prefer --token-file or env {MODEL_REGISTRY_TOKEN} (default: that env var, else "
        "no auth)",
    )
    token.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="read the required bearer token from this file (first line; keep it mode 0600)",
    )
    parser.add_argument(
        "--api-versions",
        type=api_versions,
        default=API_VERSIONS,
        metavar="V1[,V2]",
        help=f"API prefixes to serve (default {','.join(API_VERSIONS)}; v1alpha3 only = old registries)",
    )


def read_token_file(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace and the trailing newline stripped).

    Raises:
        ConfigError: The file cannot be read or holds no token.
    """
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read --token-file {path}: {err}", fix="pass a readable text file") from err
    if not token or "\n" in token:
        raise ConfigError(f"--token-file {path} must hold one non-empty line", fix="write only the token")
    return token


def run(args: argparse.Namespace) -> CommandOutput | None:
    token = args.token
    if args.token_file is not None:
        token = read_token_file(args.token_file)
    elif token is None:
        secret = RegistrySettings.from_env().token
        token = secret.get_secret_value() if secret else None
    register_secret(token)
    serve_registry(
        host=args.host,
        port=args.port,
        db=args.db,
        token=token,
        api_versions=args.api_versions,
        log_level="debug" if args.verbose else "info",
        # Printed once the port is ours, so a reader of stdout never gets a URL nothing will serve.
        on_listening=lambda url: print(f"REGISTRY_URL: {url}", flush=True),
    )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the `registry serve` flags and serve; a known failure prints one line and returns 1."""
    parser = argparse.ArgumentParser(prog="python -m modelpipe.cli.registry", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging on stderr")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        run(args)
    except ModelpipeError as err:
        print(redact(f"modelpipe registry serve: error: {err.one_line()}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
