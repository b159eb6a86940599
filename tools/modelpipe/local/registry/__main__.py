"""`python -m modelpipe.local.registry`: `modelpipe registry serve` without loading every other subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from modelpipe.cli import configure_logging
from modelpipe.cli.registry import add_serve_arguments, run
from modelpipe.errors import ModelpipeError
from modelpipe.redaction import redact


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the `registry serve` flags and serve; a known failure prints one line and returns 1."""
    parser = argparse.ArgumentParser(prog="python -m modelpipe.local.registry", description=__doc__)
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
