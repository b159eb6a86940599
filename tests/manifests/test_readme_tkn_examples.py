"""Every `tkn pipeline start` example in the README names only params its Pipeline declares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def tkn_examples(readme: str) -> list[tuple[str, list[str]]]:
    """(pipeline, [param names]) of each `tkn pipeline start` command in the text."""
    examples = []
    for command in re.findall(r"tkn pipeline start (?:[^\n]*\\\n)*[^\n]*", readme):
        pipeline = command.split()[3]
        examples.append((pipeline, re.findall(r"--param '?([a-z0-9-]+)=", command)))
    return examples


def declared_params(pipeline: str) -> set[str]:
    spec = yaml.safe_load((REPO_ROOT / "pipelines" / f"{pipeline}.yaml").read_text(encoding="utf-8"))["spec"]
    return {param["name"] for param in spec["params"]}


def test_readme_has_an_llm_example() -> None:
    examples = tkn_examples((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    assert any("model-kind" in params for _, params in examples)


@pytest.mark.parametrize(
    ("pipeline", "params"), tkn_examples((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
)
def test_example_params_are_declared(pipeline: str, params: list[str]) -> None:
    assert set(params) - declared_params(pipeline) == set()


def test_check_fails_on_an_undeclared_param() -> None:
    ((pipeline, params),) = tkn_examples("tkn pipeline start model-import \\\n  --param no-such-param=1")
    assert set(params) - declared_params(pipeline) == {"no-such-param"}
