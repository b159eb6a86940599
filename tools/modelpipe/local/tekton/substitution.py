"""Tekton variable substitution: ``$(params.x)``, ``$(params.x[*])``, ``$(tasks.t.results.r)``, context, ...

Only Tekton's own namespaces are substituted; any other ``$(...)`` (shell command substitution in a script)
is left alone. A reference into a known namespace that names nothing is an error, as in Tekton.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from modelpipe.errors import TektonSpecError, UnsupportedTektonFeatureError
from modelpipe.local.tekton.model import ParamValue

_VARIABLE = re.compile(r"\$\(([A-Za-z][^()\s$]*)\)")
_NAMESPACES = {"params", "context", "workspaces", "results", "tasks"}
_UNSUPPORTED_NAMESPACES = {"steps", "step", "credentials", "finally"}
_BRACKET_PARAM = re.compile(r"""^params\[(['"])(.+?)\1\](.*)$""")
_ACCESSOR = re.compile(r"^(.*)\[(\*|\d+)\]$")
_TASK_REF = re.compile(r"^tasks\.([^.\[]+)\.(results|status|reason)")


class UnavailableResultError(Exception):
    """A reference to a result of a task that was skipped or failed (the consumer is skipped)."""

    def __init__(self, expr: str) -> None:
        super().__init__(expr)
        self.expr = expr


@dataclass(frozen=True)
class Scope:
    """Values of the variables visible at one point, by dotted name (``params.x``, ``tasks.t.results.r``).

    Attributes:
        values: Variable values; dict values answer ``.key`` lookups, lists ``[N]`` and ``[*]``.
        unavailable: Prefixes (``tasks.build.results``) whose references raise UnavailableResultError.
        where: Where substitution happens, for error messages.
    """

    values: Mapping[str, ParamValue]
    unavailable: frozenset[str] = field(default_factory=frozenset)
    where: str = ""

    def lookup(self, expr: str) -> ParamValue:
        """The value of variable ``expr`` (the text inside ``$(...)``).

        Raises:
            TektonSpecError: The variable names nothing in this scope.
            UnsupportedTektonFeatureError: The variable belongs to a namespace the runner does not provide.
            UnavailableResultError: It refers to a result of a skipped or failed task.
        """
        namespace = re.split(r"[.\[]", expr, maxsplit=1)[0]
        if namespace in _UNSUPPORTED_NAMESPACES:
            raise UnsupportedTektonFeatureError(
                f"{self.where}: variable $({expr}) ({namespace}.*) not supported by the local runner"
            )
        base, accessor = expr, None
        match = _ACCESSOR.match(expr)
        if match:
            base, accessor = match.group(1), match.group(2)
        bracket = _BRACKET_PARAM.match(base)
        if bracket:
            base = f"params.{bracket.group(2)}{bracket.group(3)}"
        for prefix in self.unavailable:
            if base == prefix or base.startswith(prefix + "."):
                raise UnavailableResultError(expr)
        value = self._base_value(base, expr)
        if accessor is None:
            return value
        if accessor == "*":
            if isinstance(value, str):
                raise TektonSpecError(f"{self.where}: $({expr}) uses [*] on a string")
            return value
        if not isinstance(value, list):
            raise TektonSpecError(f"{self.where}: $({expr}) indexes a value that is not an array")
        index = int(accessor)
        if index >= len(value):
            raise TektonSpecError(f"{self.where}: $({expr}) index {index} out of range (length {len(value)})")
        return value[index]

    def _base_value(self, base: str, expr: str) -> ParamValue:
        if base in self.values:
            return self.values[base]
        head, _, key = base.rpartition(".")
        parent = self.values.get(head)
        if isinstance(parent, dict):
            if key not in parent:
                raise TektonSpecError(f"{self.where}: $({expr}): object has no key {key!r}")
            return parent[key]
        raise TektonSpecError(f"{self.where}: unknown variable $({expr})")


def references(text: str) -> list[str]:
    """The Tekton variables (text inside ``$(...)``) used in ``text``; shell substitutions are skipped."""
    return [m.group(1) for m in _VARIABLE.finditer(text) if _namespace(m.group(1)) is not None]


def _namespace(expr: str) -> str | None:
    namespace = re.split(r"[.\[]", expr, maxsplit=1)[0]
    return namespace if namespace in _NAMESPACES | _UNSUPPORTED_NAMESPACES else None


def _strings(value: ParamValue | Iterable[ParamValue]) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        yield from (str(v) for v in value.values())
    else:
        for item in value:
            yield from _strings(item)


def task_references(value: ParamValue | Iterable[ParamValue]) -> set[str]:
    """Names of pipeline tasks whose results or status ``value`` refers to."""
    names = set()
    for text in _strings(value):
        for expr in references(text):
            match = _TASK_REF.match(expr)
            if match:
                names.add(match.group(1))
    return names


def result_references(value: ParamValue | Iterable[ParamValue]) -> set[tuple[str, str]]:
    """``(task, result)`` pairs for every ``$(tasks.T.results.R...)`` in ``value``."""
    pairs = set()
    for text in _strings(value):
        for expr in references(text):
            match = re.match(r"^tasks\.([^.\[]+)\.results\.([^.\[]+)", expr)
            if match:
                pairs.add((match.group(1), match.group(2)))
    return pairs


def substitute_string(text: str, scope: Scope) -> str:
    """Replace every Tekton variable in ``text``; each must resolve to a string.

    Raises:
        TektonSpecError: An unknown variable, or an array/object used inside a string.
    """

    def replace(match: re.Match[str]) -> str:
        expr = match.group(1)
        if _namespace(expr) is None:
            return match.group(0)
        value = scope.lookup(expr)
        if not isinstance(value, str):
            raise TektonSpecError(
                f"{scope.where}: $({expr}) is an array or object; it can only stand alone as a list item"
            )
        return value

    return _VARIABLE.sub(replace, text)


def _whole_reference(text: str) -> str | None:
    match = _VARIABLE.fullmatch(text)
    return match.group(1) if match and _namespace(match.group(1)) is not None else None


def substitute_list(items: Iterable[str], scope: Scope) -> list[str]:
    """Substitute each item; an item that is exactly an array reference (``$(params.a[*])``) expands."""
    out: list[str] = []
    for item in items:
        expr = _whole_reference(item)
        if expr is not None and expr.endswith("[*]"):
            value = scope.lookup(expr)
            if not isinstance(value, list):
                raise TektonSpecError(f"{scope.where}: $({expr}) is not an array")
            out.extend(value)
        else:
            out.append(substitute_string(item, scope))
    return out


def substitute_value(value: ParamValue, scope: Scope) -> ParamValue:
    """Substitute a param value: a whole ``$(...[*])`` string becomes the array or object it names."""
    if isinstance(value, str):
        expr = _whole_reference(value)
        if expr is not None and expr.endswith("[*]"):
            return scope.lookup(expr)
        return substitute_string(value, scope)
    if isinstance(value, list):
        return substitute_list(value, scope)
    return {k: substitute_string(v, scope) for k, v in value.items()}
