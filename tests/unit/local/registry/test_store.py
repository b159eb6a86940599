"""RegistryStore under concurrent writers: the DB keeps names unique and stays intact."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from modelpipe.local.registry.errors import ConflictError
from modelpipe.local.registry.schemas import MODEL_VERSION, REGISTERED_MODEL
from modelpipe.local.registry.store import RegistryStore


def _race(stores: list[RegistryStore], name: str) -> list[str]:
    def attempt(index: int) -> str:
        try:
            stores[index % len(stores)].create(REGISTERED_MODEL, {"name": name})
        except ConflictError:
            return "conflict"
        return "created"

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(attempt, range(16)))


def test_parallel_creates_of_one_name_yield_exactly_one_winner(tmp_path: Path) -> None:
    outcomes = _race([RegistryStore(tmp_path / "r.db")], "same")
    assert outcomes.count("created") == 1 and outcomes.count("conflict") == 15


def test_separate_store_instances_on_one_file_still_yield_one_winner(tmp_path: Path) -> None:
    stores = [RegistryStore(tmp_path / "r.db") for _ in range(4)]
    outcomes = _race(stores, "same")
    assert outcomes.count("created") == 1
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM context").fetchone()[0] == 1


def test_unique_index_rejects_duplicates_written_behind_the_stores_back(tmp_path: Path) -> None:
    RegistryStore(tmp_path / "r.db").create(REGISTERED_MODEL, {"name": "m"})
    with sqlite3.connect(tmp_path / "r.db") as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO context (type, name, create_time, update_time, props, custom)"
            " VALUES ('registered-model', 'm', 0, 0, '{}', '{}')"
        )


def test_data_survives_reopening_the_file(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path / "r.db")
    model = store.create(REGISTERED_MODEL, {"name": "m"})
    store.create(MODEL_VERSION, {"name": "v1", "registeredModelId": model["id"]})
    store.close()
    reopened = RegistryStore(tmp_path / "r.db")
    assert reopened.latest_version(int(model["id"]))["name"] == "v1"  # type: ignore[index]
