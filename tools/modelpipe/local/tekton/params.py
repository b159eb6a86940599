"""Binding param values to declarations: types, defaults, required params, object keys, enums."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from modelpipe.errors import TektonSpecError
from modelpipe.local.tekton.model import ParamSpec, ParamValue, Task


def _type_of(value: ParamValue) -> str:
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "string"


def bind_declared(
    specs: Sequence[ParamSpec], given: Mapping[str, ParamValue], where: str, owner: str
) -> dict[str, ParamValue]:
    """Values for every declared param: given, else default; checked against type, keys and enum.

    Raises:
        TektonSpecError: An undeclared param, a missing required one, a type/key/enum mismatch.
    """
    declared = {s.name for s in specs}
    extra = sorted(set(given) - declared)
    if extra:
        raise TektonSpecError(f"{where}: param(s) {', '.join(extra)} not declared by {owner}")
    missing = [s.name for s in specs if s.name not in given and s.default is None]
    if missing:
        raise TektonSpecError(
            f"{where}: missing required param(s) {', '.join(missing)} of {owner}",
            fix=" ".join(f"-p {m}=VALUE" for m in missing) if owner.startswith("Pipeline") else None,
        )
    bound: dict[str, ParamValue] = {}
    for spec in specs:
        value = given.get(spec.name, spec.default)
        if value is None:  # required params were checked above; this keeps the type checker honest
            raise TektonSpecError(f"{where}: param {spec.name} of {owner} has no value")
        if _type_of(value) != spec.type:
            raise TektonSpecError(
                f"{where}: param {spec.name} of {owner} is {spec.type}, got {_type_of(value)}"
            )
        if spec.type == "object" and isinstance(value, dict):
            merged = {**(spec.default if isinstance(spec.default, dict) else {}), **value}
            absent = [k for k in spec.properties if k not in merged]
            if absent:
                raise TektonSpecError(f"{where}: object param {spec.name} misses key(s) {', '.join(absent)}")
            value = merged
        if spec.enum and isinstance(value, str) and value not in spec.enum:
            raise TektonSpecError(
                f"{where}: param {spec.name}={value!r} of {owner} not in its enum {list(spec.enum)}"
            )
        bound[spec.name] = value
    return bound


def bind_params(task: Task, given: Mapping[str, ParamValue], where: str) -> dict[str, ParamValue]:
    """Params for one Task run (see ``bind_declared``)."""
    return bind_declared(task.params, given, where, f"Task {task.name} ({task.source})")


def parse_cli_params(specs: Sequence[ParamSpec], raw: Sequence[str]) -> dict[str, ParamValue]:
    """``name=value`` pairs from the command line; array params take JSON or ``a,b,c``, object params JSON.

    Raises:
        TektonSpecError: A pair without ``=``, an undeclared name or a value of the wrong shape.
    """
    types = {s.name: s.type for s in specs}
    out: dict[str, ParamValue] = {}
    for item in raw:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise TektonSpecError(f"-p {item!r}: expected name=value")
        kind = types.get(name)
        if kind is None:
            known = f"known: {', '.join(sorted(types))}" if types else "it declares no params"
            raise TektonSpecError(f"-p {name}: the pipeline declares no such param ({known})")
        if kind == "string":
            out[name] = text
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            if kind == "object":
                raise TektonSpecError(
                    f'-p {name}: object params take JSON, e.g. \'{{"key": "value"}}\''
                ) from None
            value = [v for v in text.split(",") if v]
        if kind == "array" and isinstance(value, list):
            out[name] = [str(v) for v in value]
        elif kind == "object" and isinstance(value, dict):
            out[name] = {str(k): str(v) for k, v in value.items()}
        else:
            raise TektonSpecError(f"-p {name}: expected a JSON {kind}")
    return out
