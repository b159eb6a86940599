"""SQLite storage of the registry: write transactions take the lock up front, the DB enforces uniqueness."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelpipe.local.registry.errors import BadRequestError, ConflictError, NotFoundError
from modelpipe.local.registry.paging import PageRequest, encode_token
from modelpipe.local.registry.schemas import KINDS, MAX_NAME_LENGTH, Kind, check_name_length

SCHEMA_VERSION = 1
_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    parent_id INTEGER REFERENCES context(id),
    external_id TEXT UNIQUE,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    props TEXT NOT NULL,
    custom TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS {table}_name ON {table}(type, COALESCE(parent_id, 0), name);
CREATE INDEX IF NOT EXISTS {table}_parent ON {table}(parent_id);
"""
_COLUMNS = "id, type, name, parent_id, external_id, create_time, update_time, props, custom"


class RegistryStore:
    """Registered models, versions, artifacts, serving environments and inference services in one SQLite file.

    Contexts (models, versions, serving environments, inference services) share one id sequence,
    artifacts have their own, as in the real server. Each thread gets its own connection; every write runs in
    ``BEGIN IMMEDIATE`` so concurrent writers (threads or processes) queue instead of failing.

    Args:
        path: The database file (created with its parent folder when missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._write() as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} was written by a newer registry schema")
            # The context table first: artifact.parent_id references it.
            for table in ("context", "artifact"):
                for statement in _TABLE_DDL.format(table=table).split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- connections and transactions ----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA case_sensitive_like=ON")  # filterQuery LIKE is case-sensitive, ILIKE is not
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    # -- public operations ---------------------------------------------------------------------------------

    def create(
        self, kind: Kind, values: Mapping[str, Any], *, parent_id: int | None = None
    ) -> dict[str, Any]:
        """Insert a new entity and return it as the API shows it.

        Args:
            kind: What to create.
            values: Validated fields under their JSON names (name, externalId, type fields, parent id).
            parent_id: The parent (model version for artifacts attached on create); contexts take it from
                ``values[kind.parent_field]``.

        Raises:
            BadRequestError: A referenced id does not exist or has another type.
            ConflictError: The name (in its scope) or externalId is taken.
        """
        with self._write() as conn:
            return self._insert(conn, kind, values, parent_id)

    def get(self, kind: Kind | None, entity_id: int, *, table: str | None = None) -> dict[str, Any]:
        """One entity by id; ``kind=None`` accepts any artifact type (``table`` then says which table).

        Raises:
            NotFoundError: No entity of that kind has this id.
        """
        with self._read() as conn:
            return self._get(conn, table or _table(kind), entity_id, kind)

    def update(self, kind: Kind, entity_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Merge non-null ``changes`` into an entity; ``customProperties`` replaces the whole map.

        Raises:
            NotFoundError: No entity of that kind has this id.
            BadRequestError: A referenced id does not exist.
            ConflictError: The new externalId is taken.
        """
        with self._write() as conn:
            row = self._row(conn, kind.table, entity_id, kind)
            return self._update_row(conn, kind, row, changes)

    def upsert_version_artifact(
        self, kind: Kind, values: Mapping[str, Any], *, version_id: int, artifact_id: int | None
    ) -> tuple[dict[str, Any], bool]:
        """Attach an artifact to a model version: update it (by id, or a metric by name) or create it.

        Returns:
            The artifact and whether it was created.

        Raises:
            NotFoundError: ``artifact_id`` names no artifact.
            BadRequestError: The artifact has another type.
            ConflictError: The artifact belongs to another version, or its name is taken for this type.
        """
        values = dict(values)
        with self._write() as conn:
            row = None
            if artifact_id is not None:
                row = self._row(conn, "artifact", artifact_id, None)
                if row["type"] != kind.key:
                    raise BadRequestError(f"artifact {artifact_id} is a {row['type']}, not a {kind.key}")
                if row["parent_id"] not in (None, version_id):
                    raise ConflictError(f"artifact {artifact_id} belongs to model version {row['parent_id']}")
            elif kind.key == "metric" and values.get("name"):
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM artifact WHERE type = ? AND parent_id = ? AND name = ?",
                    (kind.key, version_id, values["name"]),
                ).fetchone()
            if row is None:
                return self._insert(conn, kind, values, version_id), True
            values.pop("name", None)
            if row["parent_id"] is None:
                try:
                    conn.execute("UPDATE artifact SET parent_id = ? WHERE id = ?", (version_id, row["id"]))
                except sqlite3.IntegrityError as err:
                    raise ConflictError(
                        f"{kind.label} named {row['name']!r} already exists under model version {version_id}"
                    ) from err
            return self._update_row(conn, kind, row, values), False

    def find(
        self, kinds: Sequence[Kind], *, name: str | None, external_id: str | None, parent_id: int | None
    ) -> dict[str, Any]:
        """The single entity matching every given criterion.

        Raises:
            NotFoundError: Zero or several entities match.
        """
        where, args = _filters(kinds, name=name, external_id=external_id, parent_id=parent_id)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM {kinds[0].table} WHERE {where} LIMIT 2", args
            ).fetchall()
        label = "/".join(k.label for k in kinds) if len(kinds) < 3 else "Artifact"
        if len(rows) != 1:
            criteria = ", ".join(
                f"{key}={value!r}"
                for key, value in (
                    ("name", name),
                    ("externalId", external_id),
                    ("parentResourceId", parent_id),
                )
                if value is not None
            )
            found = "no" if not rows else "more than one"
            raise NotFoundError(f"{found} {label} found for {criteria}")
        return _to_api(rows[0])

    def list_page(
        self,
        kinds: Sequence[Kind],
        page: PageRequest,
        *,
        parent_id: int | None = None,
        name: str | None = None,
        external_id: str | None = None,
        condition: tuple[str, list[Any]] | None = None,
    ) -> dict[str, Any]:
        """One page of entities of ``kinds`` (all from one table), as the API's list body.

        ``condition`` is an extra SQL condition with its arguments (a compiled filterQuery).
        """
        where, args = _filters(kinds, name=name, external_id=external_id, parent_id=parent_id)
        if condition is not None:
            where += f" AND ({condition[0]})"
            args += condition[1]
        column, direction = page.column, "DESC" if page.descending else "ASC"
        if page.after is not None:
            op = "<" if page.descending else ">"
            where += f" AND ({column} {op} ? OR ({column} = ? AND id {op} ?))"
            args += [page.after[0], page.after[0], page.after[1]]
        sql = (
            f"SELECT {_COLUMNS} FROM {kinds[0].table} WHERE {where}"
            f" ORDER BY {column} {direction}, id {direction} LIMIT ?"
        )
        with self._read() as conn:
            rows = conn.execute(sql, [*args, page.size + 1]).fetchall()
        token = ""
        if len(rows) > page.size:
            rows = rows[: page.size]
            token = encode_token(page.order_by, rows[-1][column], rows[-1]["id"])
        items = [_to_api(row) for row in rows]
        return {"items": items, "nextPageToken": token, "pageSize": page.size, "size": len(items)}

    def latest_version(self, model_id: int) -> dict[str, Any] | None:
        """The newest model version of a registered model by creation order, if it has any."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM context WHERE type = 'model-version' AND parent_id = ?"
                " ORDER BY create_time DESC, id DESC LIMIT 1",
                (model_id,),
            ).fetchone()
        return None if row is None else _to_api(row)

    def all_of(self, kind: Kind) -> list[tuple[str | None, dict[str, Any]]]:
        """Every entity of ``kind`` in id order with its parent id (for the read-only overview page)."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM {kind.table} WHERE type = ? ORDER BY id", (kind.key,)
            )
            return [(_str_or_none(row["parent_id"]), _to_api(row)) for row in rows.fetchall()]

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- helpers -------------------------------------------------------------------------------------------

    def _insert(
        self, conn: sqlite3.Connection, kind: Kind, values: Mapping[str, Any], parent_id: int | None
    ) -> dict[str, Any]:
        values = dict(values)
        if kind.parent_field:
            parent_id = int(values.pop(kind.parent_field))
        name = values.pop("name", None) or str(uuid.uuid4())
        external_id = values.pop("externalId", None)
        custom = values.pop("customProperties", {})
        check_name_length(kind, name, parent_id)
        _check_external_id(external_id)
        self._check_refs(conn, kind, values, parent_id)
        self._check_unique(conn, kind, name=name, parent_id=parent_id, external_id=external_id)
        now = _now_ms()
        try:
            cursor = conn.execute(
                f"INSERT INTO {kind.table} (type, name, parent_id, external_id, create_time, update_time,"
                " props, custom) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (kind.key, name, parent_id, external_id, now, now, json.dumps(values), json.dumps(custom)),
            )
        except sqlite3.IntegrityError as err:  # backstop: the checks above ran under the same lock
            raise ConflictError(f"{kind.label} {name!r} violates a uniqueness rule: {err}") from err
        return self._get(conn, kind.table, int(cursor.lastrowid or 0))

    def _row(self, conn: sqlite3.Connection, table: str, entity_id: int, kind: Kind | None) -> sqlite3.Row:
        row = conn.execute(f"SELECT {_COLUMNS} FROM {table} WHERE id = ?", (entity_id,)).fetchone()
        if row is None or (kind is not None and row["type"] != kind.key):
            label = kind.label if kind else "Artifact"
            raise NotFoundError(f"{label} with id {entity_id} not found")
        return row  # type: ignore[no-any-return]

    def _get(
        self, conn: sqlite3.Connection, table: str, entity_id: int, kind: Kind | None = None
    ) -> dict[str, Any]:
        return _to_api(self._row(conn, table, entity_id, kind))

    def _update_row(
        self, conn: sqlite3.Connection, kind: Kind, row: sqlite3.Row, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        changes = dict(changes)
        external_id = changes.pop("externalId", row["external_id"])
        custom = changes.pop("customProperties", None)
        self._check_refs(conn, kind, changes, None)
        if external_id != row["external_id"]:
            _check_external_id(external_id)
            self._check_unique(conn, kind, name=None, parent_id=None, external_id=external_id)
        props = json.loads(row["props"]) | changes
        # lastUpdateTimeSinceEpoch moves on every save, even two saves within one millisecond.
        update_time = max(_now_ms(), row["update_time"] + 1)
        conn.execute(
            f"UPDATE {kind.table} SET external_id = ?, update_time = ?, props = ?, custom = ? WHERE id = ?",
            (
                external_id,
                update_time,
                json.dumps(props),
                row["custom"] if custom is None else json.dumps(custom),
                row["id"],
            ),
        )
        return self._get(conn, kind.table, row["id"])

    def _check_refs(
        self, conn: sqlite3.Connection, kind: Kind, values: Mapping[str, Any], parent_id: int | None
    ) -> None:
        refs = {field: values.get(field) for field in kind.refs}
        if kind.parent_field:
            refs[kind.parent_field] = parent_id
        for field, ref in refs.items():
            if ref is None:
                continue
            target = KINDS[kind.refs[field]]
            found = conn.execute(f"SELECT type FROM {target.table} WHERE id = ?", (int(ref),)).fetchone()
            if found is None or found["type"] != target.key:
                raise BadRequestError(f"{field} {ref} does not name an existing {target.label}")

    def _check_unique(
        self,
        conn: sqlite3.Connection,
        kind: Kind,
        *,
        name: str | None,
        parent_id: int | None,
        external_id: str | None,
    ) -> None:
        if name is not None:
            clash = conn.execute(
                f"SELECT id FROM {kind.table} WHERE type = ? AND COALESCE(parent_id, 0) = ? AND name = ?",
                (kind.key, parent_id or 0, name),
            ).fetchone()
            if clash is not None:
                scope = f" under parent {parent_id}" if parent_id else ""
                raise ConflictError(f"{kind.label} named {name!r}{scope} already exists (id {clash['id']})")
        if external_id is not None:
            clash = conn.execute(
                f"SELECT id, type FROM {kind.table} WHERE external_id = ?", (external_id,)
            ).fetchone()
            if clash is not None:
                raise ConflictError(
                    f"externalId {external_id!r} is already used by {clash['type']} {clash['id']}"
                )


def _check_external_id(external_id: str | None) -> None:
    if external_id is not None and len(external_id) > MAX_NAME_LENGTH:
        raise BadRequestError(f"externalId has {len(external_id)} characters; at most {MAX_NAME_LENGTH} fit")


def _table(kind: Kind | None) -> str:
    return "artifact" if kind is None else kind.table


def _filters(
    kinds: Sequence[Kind], *, name: str | None, external_id: str | None, parent_id: int | None
) -> tuple[str, list[Any]]:
    where = f"type IN ({', '.join('?' for _ in kinds)})"
    args: list[Any] = [k.key for k in kinds]
    for column, value in (("name", name), ("external_id", external_id), ("parent_id", parent_id)):
        if value is not None:
            where += f" AND {column} = ?"
            args.append(value)
    return where, args


def _to_api(row: sqlite3.Row) -> dict[str, Any]:
    kind = KINDS[row["type"]]
    entity: dict[str, Any] = {"id": str(row["id"]), "name": row["name"]}
    if kind.is_artifact:
        entity["artifactType"] = kind.key
    if row["external_id"] is not None:
        entity["externalId"] = row["external_id"]
    if kind.parent_field and row["parent_id"] is not None:
        entity[kind.parent_field] = str(row["parent_id"])
    entity |= dict(kind.defaults) | json.loads(row["props"])
    entity["customProperties"] = json.loads(row["custom"])
    entity["createTimeSinceEpoch"] = str(row["create_time"])
    entity["lastUpdateTimeSinceEpoch"] = str(row["update_time"])
    return entity


def _str_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
