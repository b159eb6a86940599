"""``filterQuery`` of the list endpoints: the SQL-like filter compiled to a parameterised WHERE clause.

Supported: comparisons ``= != <> > < >= <=``, ``LIKE``/``ILIKE``, ``IN (...)``, ``AND``/``OR``,
parentheses; string, number and boolean literals; properties ``id``, ``name``, ``externalId``,
``createTimeSinceEpoch``, ``lastUpdateTimeSinceEpoch``, the parent id field, each type's own fields
(``state``, ``uri``, ...), and custom properties by name (type inferred from the literal) or as
``prop.string_value`` / ``int_value`` / ``double_value`` / ``bool_value``; backticks quote odd names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from modelpipe.local.registry.errors import BadRequestError
from modelpipe.local.registry.schemas import Kind

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<punct>[(),])
    |(?P<op><>|!=|>=|<=|=|>|<)
    |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    |(?P<quoted>`[^`]+`)
    |(?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    )""",
    re.VERBOSE,
)
_COLUMNS = {
    "id": "id",
    "name": "name",
    "externalId": "external_id",
    "createTimeSinceEpoch": "create_time",
    "lastUpdateTimeSinceEpoch": "update_time",
}
_VALUE_FIELDS = ("string_value", "int_value", "double_value", "bool_value")
_KEYWORDS = {"AND", "OR", "IN", "LIKE", "ILIKE", "TRUE", "FALSE"}
# Bounds that keep a hostile query a 400: Python's recursion and SQLite's expression depth (1000) and
# variable count would otherwise fail as 500/503. Real dashboard and client queries stay far below.
MAX_QUERY_LENGTH = 4096
MAX_NESTING = 16
MAX_CONDITIONS = 64
MAX_VALUES = 256
_INT64 = range(-(2**63), 2**63)


def compile_filter(query: str, kinds: Sequence[Kind]) -> tuple[str, list[Any]]:
    """SQL condition and arguments for ``query`` over rows of ``kinds``.

    Raises:
        BadRequestError: The query does not parse, naming where it stopped.
    """
    if len(query) > MAX_QUERY_LENGTH:
        raise BadRequestError(f"filterQuery is {len(query)} characters long; at most {MAX_QUERY_LENGTH}")
    parser = _Parser(_tokenize(query), kinds)
    sql = parser.expression()
    if parser.position < len(parser.tokens):
        raise BadRequestError(f"filterQuery: unexpected {parser.tokens[parser.position][1]!r}")
    return sql, parser.args


def _tokenize(query: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    query = query.rstrip()
    while position < len(query):
        match = _TOKEN.match(query, position)
        if match is None or match.end() == position:
            raise BadRequestError(f"filterQuery: cannot read {query[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        text = match.group(kind or "")
        if kind == "str":
            tokens.append(("value", re.sub(r"\\(.)", r"\1", text[1:-1])))
        elif kind == "num":
            tokens.append(("value", _number(text)))
        elif kind == "quoted":
            tokens.append(("name", text[1:-1]))
        elif kind == "word" and text.upper() in ("TRUE", "FALSE"):
            tokens.append(("value", text.upper() == "TRUE"))
        elif kind == "word" and text.upper() in _KEYWORDS:
            tokens.append(("keyword", text.upper()))
        elif kind == "word":
            tokens.append(("name", text))
        else:
            tokens.append((kind or "", text))
    return tokens


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE"):
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise BadRequestError(f"filterQuery: number {text[:40]} is out of range")
        return value
    number = int(text)
    if number not in _INT64:
        raise BadRequestError(f"filterQuery: integer {text[:40]} does not fit in 64 bits")
    return number


class _Parser:
    """Recursive descent: expression = term (OR term)*, term = factor (AND factor)*."""

    def __init__(self, tokens: list[tuple[str, Any]], kinds: Sequence[Kind]) -> None:
        self.tokens = tokens
        self.kinds = kinds
        self.position = 0
        self.args: list[Any] = []
        self.depth = 0
        self.conditions = 0

    def _peek(self) -> tuple[str, Any]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", "end of query")

    def _take(self, kind: str, value: Any = None) -> Any:
        token = self._peek()
        if token[0] != kind or (value is not None and token[1] != value):
            raise BadRequestError(f"filterQuery: expected {value or kind}, found {token[1]!r}")
        self.position += 1
        return token[1]

    def expression(self) -> str:
        return self._joined("OR", self._term)

    def _term(self) -> str:
        return self._joined("AND", self._factor)

    def _joined(self, keyword: str, operand: Callable[[], str]) -> str:
        """``operand (keyword operand)*`` as SQL, parenthesized when there is more than one."""
        parts = [operand()]
        while self._peek() == ("keyword", keyword):
            self.position += 1
            parts.append(operand())
        return parts[0] if len(parts) == 1 else "(" + f" {keyword} ".join(parts) + ")"

    def _factor(self) -> str:
        if self._peek() == ("punct", "("):
            self.position += 1
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise BadRequestError(f"filterQuery nests parentheses deeper than {MAX_NESTING} levels")
            inner = self.expression()
            self._take("punct", ")")
            self.depth -= 1
            return f"({inner})"
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise BadRequestError(f"filterQuery has more than {MAX_CONDITIONS} conditions")
        name = self._take("name")
        token = self._peek()
        if token == ("keyword", "IN"):
            self.position += 1
            self._take("punct", "(")
            values = [self._take("value")]
            while self._peek() == ("punct", ","):
                self.position += 1
                values.append(self._take("value"))
                if len(values) > MAX_VALUES:
                    raise BadRequestError(f"filterQuery: IN lists more than {MAX_VALUES} values")
            self._take("punct", ")")
            column = self._column(name, values[0])
            self.args.extend(_normalize(name, v) for v in values)
            return f"{column} IN ({', '.join('?' for _ in values)})"
        if token in (("keyword", "LIKE"), ("keyword", "ILIKE")):
            self.position += 1
            value = self._take("value")
            column = self._column(name, str(value))
            self.args.append(str(value))
            if token[1] == "ILIKE":
                return f"LOWER({column}) LIKE LOWER(?)"
            return f"{column} LIKE ?"  # case-sensitive: the store sets PRAGMA case_sensitive_like
        operator = self._take("op")
        value = self._take("value")
        column = self._column(name, value)
        self.args.append(_normalize(name, value))
        return f"{column} {'!=' if operator == '<>' else operator} ?"

    def _column(self, name: str, value: Any) -> str:
        if name in _COLUMNS:
            return _COLUMNS[name]
        if any(kind.parent_field == name for kind in self.kinds):
            return "parent_id"
        defaults = {k: v for kind in self.kinds for k, v in kind.defaults.items()}
        if any(name in kind.fields or name in kind.create_only for kind in self.kinds):
            extracted = f"json_extract(props, '$.\"{_json_key(name)}\"')"
            if name in defaults:
                self.args.append(defaults[name])
                return f"COALESCE({extracted}, ?)"
            return extracted
        prop, _, field = name.rpartition(".")
        if field not in _VALUE_FIELDS:
            prop, field = name, _field_for(value)
        path = f'$."{_json_key(prop)}"'
        if field == "int_value":
            return f"CAST(json_extract(custom, '{path}.int_value') AS INTEGER)"
        if field == "number":
            return (
                f"COALESCE(json_extract(custom, '{path}.double_value'),"
                f" CAST(json_extract(custom, '{path}.int_value') AS INTEGER))"
            )
        return f"json_extract(custom, '{path}.{field}')"


def _field_for(value: Any) -> str:
    if isinstance(value, bool):
        return "bool_value"
    if isinstance(value, int | float):
        return "number"
    return "string_value"


def _normalize(name: str, value: Any) -> Any:
    # Ids are integers in the DB while clients often quote them.
    if (name == "id" or name.endswith("Id")) and isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _json_key(key: str) -> str:
    if '"' in key or "'" in key:
        raise BadRequestError(f"filterQuery: property name {key!r} cannot contain quotes")
    return key
