"""The product never depends on the local stand-ins: a walk over every import in tools/modelpipe."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "tools" / "modelpipe"
STAND_INS = "modelpipe.local"
# Product layers whose imports must never reach the stand-ins.
PRODUCT = ("modelpipe.steps", "modelpipe.targets", "modelpipe.cli")
# The CLI entries of the local subcommands: they are the one place allowed to start a stand-in.
LOCAL_ENTRIES = frozenset({"modelpipe.cli.local", "modelpipe.cli.local_s3", "modelpipe.cli.registry"})


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(source: str, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """Every modelpipe module ``source`` imports, at any depth (function-level imports count too)."""
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        for name in names:
            if not name.startswith("modelpipe"):
                continue
            # The module itself and its parent packages run on import.
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if candidate in known:
                    yield candidate


def import_graph(root: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """module -> the modelpipe modules it imports directly."""
    files = {_module_name(path, root): path for path in root.rglob("*.py")}
    known = set(files)
    graph = {}
    for name, path in files.items():
        source = path.read_text(encoding="utf-8")
        graph[name] = set(_imports(source, name, path.name == "__init__.py", known)) - {name}
    return graph


def paths_to_stand_ins(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """For each product module that reaches modelpipe.local (not through a local entry): one such path."""
    found: dict[str, list[str]] = {}
    for start in sorted(graph):
        if not start.startswith(PRODUCT) or start in LOCAL_ENTRIES:
            continue
        seen = {start}
        queue: list[list[str]] = [[start]]
        while queue:
            path = queue.pop(0)
            head = path[-1]
            if head == STAND_INS or head.startswith(STAND_INS + "."):
                found[start] = path
                break
            if head in LOCAL_ENTRIES:
                continue
            for nxt in sorted(graph.get(head, ())):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append([*path, nxt])
    return found


def test_no_product_import_reaches_the_stand_ins() -> None:
    leaks = paths_to_stand_ins(import_graph())
    assert not leaks, "product code imports modelpipe.local:\n" + "\n".join(
        " -> ".join(path) for path in leaks.values()
    )


def test_the_stand_ins_never_import_the_cli() -> None:
    graph = import_graph()
    wrong = {m: sorted(d for d in deps if d.startswith("modelpipe.cli")) for m, deps in graph.items()}
    assert not {m: d for m, d in wrong.items() if m.startswith(STAND_INS) and d}


@pytest.mark.parametrize(
    ("code", "leaks"),
    [
        ("def f():\n    from modelpipe.local.s3 import SeaweedS3\n", True),
        ("from modelpipe import local\n", True),
        ("from ..local import services\n", True),
        ("from modelpipe.processes import free_port\n", False),
    ],
)
def test_the_walk_catches_a_leak(tmp_path: Path, code: str, leaks: bool) -> None:
    """The check itself can fail: a planted import from a step into local/ is found, at any depth."""
    root = tmp_path / "modelpipe"
    for package in ("", "steps", "local"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "processes.py").write_text("")
    (root / "local" / "s3.py").write_text("")
    (root / "local" / "services.py").write_text("")
    (root / "steps" / "helper.py").write_text(code)
    (root / "steps" / "deploy.py").write_text("from modelpipe.steps import helper\n")
    found = paths_to_stand_ins(import_graph(root))
    assert ("modelpipe.steps.deploy" in found) is leaks


def test_production_code_narrows_types_without_assert() -> None:
    """``python -O`` strips asserts, so a check that matters must be an ``if`` that raises."""
    runtime_dir = PACKAGE_DIR.parents[1] / "runtime" / "diffusers_runtime"
    found = [
        f"{path.relative_to(PACKAGE_DIR.parents[1])}:{node.lineno}"
        for folder in (PACKAGE_DIR, runtime_dir)
        for path in sorted(folder.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert not found, "assert in production code: " + ", ".join(found)
