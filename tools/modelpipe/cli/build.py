"""`modelpipe build` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Not implemented yet: owned by the helper building this subcommand."""
