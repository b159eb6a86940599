"""`modelpipe parse-source`: the model source and default name the run scripts need, from the one parser."""

from __future__ import annotations

import argparse

from modelpipe.cli.common import CommandOutput, add_step_parser
from modelpipe.names import dns_label
from modelpipe.sources import HubSource, expand_source, parse_source


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_step_parser(
        subparsers,
        "parse-source",
        help="normalise a model source and derive its default model name",
        description="Read --source as the run scripts take it (ORG/REPO, hf://ORG/REPO[@REV] or "
        "file:///DIR) and print SOURCE_URI (the full URI), MODEL_NAME (the repository or folder name as a "
        "DNS-1035 label, usable as registered model and InferenceService name) and REVISION (the @REV "
        "in the URI, empty when none). Nothing is downloaded.",
        examples="  modelpipe parse-source --source stabilityai/sd-turbo\n"
        "  modelpipe parse-source --source hf://segmind/tiny-sd@cad0bd7 --results-dir /tmp/src",
    )
    parser.add_argument("--source", required=True, help="ORG/REPO, hf://ORG/REPO[@REV] or file:///ABS/DIR")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput:
    uri = expand_source(args.source)
    source = parse_source(uri)
    revision = source.revision if isinstance(source, HubSource) and source.pinned else ""
    return CommandOutput(
        results={"SOURCE_URI": uri, "MODEL_NAME": dns_label(source.name), "REVISION": revision}
    )
