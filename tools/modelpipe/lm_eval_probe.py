"""Look tasks up in lm-eval's task registry: which exist, and each one's output type (no dataset is loaded).

Runs on the evaluation environment's python (``python lm_eval_probe.py --tasks a,b --include_path DIR``),
which has lm-eval but not modelpipe, so it imports nothing from modelpipe. Writes one JSON object to --out:
``{"unknown": [names], "output_types": {name: output_type}}``; a group or tag reports the output type its
member tasks share, or ``mixed``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# lm-eval's default when a task config names none.
_DEFAULT_OUTPUT_TYPE = "generate_until"


def _member_names(cfg: dict[str, Any]) -> list[str]:
    members = cfg.get("task", [])
    names = []
    for item in members if isinstance(members, list) else [members]:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and isinstance(item.get("task") or item.get("group"), str):
            names.append(item.get("task") or item["group"])
    return names


def output_type(index: dict[str, Any], name: str, seen: frozenset[str] = frozenset()) -> str:
    """The output type of a task, or the one shared by a group's or tag's members (else "mixed")."""
    entry = index.get(name)
    if entry is None or name in seen:
        return "mixed"
    kind = entry.kind.name
    if kind in {"TASK", "PY_TASK"}:
        return str((entry.cfg or {}).get("output_type") or _DEFAULT_OUTPUT_TYPE)
    members = sorted(entry.tags) if kind == "TAG" else _member_names(entry.cfg or {})
    types = {output_type(index, member, seen | {name}) for member in members}
    return types.pop() if len(types) == 1 else "mixed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", required=True)
    parser.add_argument("--include_path", action="append", default=[])
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=args.include_path or None)
    index = manager.task_index
    names = [name.strip() for name in args.tasks.split(",") if name.strip()]
    unknown = [name for name in names if name not in index]
    types = {name: output_type(index, name) for name in names if name in index}
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({"unknown": unknown, "output_types": types}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
