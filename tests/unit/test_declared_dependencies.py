"""Every third-party module a package imports is one of its declared dependencies.

An import that works only because another dependency happens to pull its distribution in breaks the day
that dependency stops doing so (tokenizers was imported by the runtime and came only through transformers).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.support.tools import REPO_ROOT


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(pyproject: Path) -> set[str]:
    requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return {_canonical(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]) for requirement in requirements}


def _imported_top_level(package: Path) -> set[str]:
    names: set[str] = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", package.name}


@pytest.mark.parametrize(
    ("project", "package", "elsewhere", "beside"),
    [
        # lm_eval_probe.py runs on the evaluation environment's python (.venv-eval, eval-constraints.txt);
        # the local stand-ins use the runtime, installed from ../runtime beside modelpipe.
        ("tools", "modelpipe", {"lm_eval"}, {"diffusers-runtime"}),
        ("runtime", "diffusers_runtime", set(), set()),
    ],
)
def test_every_third_party_import_is_a_declared_dependency(
    project: str, package: str, elsewhere: set[str], beside: set[str]
) -> None:
    declared = _declared(REPO_ROOT / project / "pyproject.toml") | beside
    distributions = packages_distributions()
    undeclared = {
        module: sorted(_canonical(d) for d in distributions.get(module, []))
        for module in _imported_top_level(REPO_ROOT / project / package) - elsewhere
        if not {_canonical(d) for d in distributions.get(module, [])} & declared
    }
    assert undeclared == {}, f"imported by {package} but not declared in {project}/pyproject.toml"
