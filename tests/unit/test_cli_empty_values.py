"""An empty flag value means the flag's default, for every optional flag of every subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from modelpipe.cli import build_parser
from modelpipe.cli.common import StepArgumentParser, parse_bool
from modelpipe.config import storage_key_for
from modelpipe.errors import ConfigError


def _parser() -> StepArgumentParser:
    parser = StepArgumentParser(prog="t")
    parser.add_argument("--name", required=True)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", default="512x512", type=lambda text: text.upper())
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--flag", type=parse_bool, default=True)
    parser.add_argument("--mode", choices=("a", "b"), default="a")
    parser.add_argument("--labels", nargs="*", default=["x"])
    parser.add_argument("--extra", action="append", default=[])
    return parser


def test_empty_values_take_each_flags_default() -> None:
    args = _parser().parse_args(
        ["--name", "n", "--steps", "", "--size", "", "--dir", "", "--flag", "", "--mode", ""]
    )
    assert (args.steps, args.size, args.dir, args.flag, args.mode) == (25, "512X512", None, True, "a")


def test_given_values_still_parse_and_are_checked() -> None:
    args = _parser().parse_args(["--name", "n", "--steps", "3", "--flag", "false", "--dir", "d"])
    assert (args.steps, args.flag, args.dir) == (3, False, Path("d"))
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["--name", "n", "--steps", "three"])
    assert exc.value.code == 2


@pytest.mark.parametrize("values", [[], [""], ["", ""]])
def test_an_empty_list_takes_the_default(values: list[str]) -> None:
    assert _parser().parse_args(["--name", "n", "--labels", *values]).labels == ["x"]


def test_a_list_keeps_its_non_empty_values() -> None:
    assert _parser().parse_args(["--name", "n", "--labels", "a", "", "b c"]).labels == ["a", "b c"]


def test_an_empty_required_flag_is_a_usage_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["--name", ""])
    assert exc.value.code == 2
    assert "argument --name: must not be empty" in capsys.readouterr().err


def test_append_flags_are_left_alone() -> None:
    assert _parser().parse_args(["--name", "n", "--extra", "", "--extra", "v"]).extra == ["", "v"]


def test_every_subcommand_parser_uses_the_rule() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert all(isinstance(p, StepArgumentParser) for p in sub.choices.values())


def test_parse_bool_rejects_other_words() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        parse_bool("yes")


def test_storage_key_is_the_data_connection_secret() -> None:
    assert storage_key_for("models") == "aws-connection-models"
    with pytest.raises(ConfigError, match="--data-connection 'Bad_Name'"):
        storage_key_for("Bad_Name")


def test_a_flag_prefix_is_not_taken_for_a_longer_flag(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _parser()
    parser.add_argument("--output-tokens", type=int, default=32)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--name", "n", "--out", "dir"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --out" in capsys.readouterr().err
