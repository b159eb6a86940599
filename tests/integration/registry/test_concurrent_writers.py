"""Parallel HTTP writers, through one server and through two servers sharing one SQLite file."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.fixtures.registry import RegistryFactory, RegistryServer

pytestmark = pytest.mark.integration


def _post_all(urls: list[str], bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    def post(index: int) -> httpx.Response:
        return httpx.post(urls[index % len(urls)], json=bodies[index], timeout=60)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(post, range(len(bodies))))


def _integrity(server: RegistryServer) -> str:
    with sqlite3.connect(server.db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_parallel_creates_of_one_name_have_exactly_one_winner(registry_server: RegistryServer) -> None:
    url = f"{registry_server.api()}/registered_models"
    responses = _post_all([url], [{"name": "same"}] * 12)
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 11
    assert httpx.get(url).json()["size"] == 1
    assert _integrity(registry_server) == "ok"


def test_two_servers_on_one_db_still_have_one_winner(registry_server_factory: RegistryFactory) -> None:
    first = registry_server_factory()
    second = registry_server_factory(db=first.db)
    urls = [f"{server.api()}/registered_models" for server in (first, second)]
    responses = _post_all(urls, [{"name": "same"}] * 12)
    assert sorted(r.status_code for r in responses).count(201) == 1
    assert httpx.get(urls[1]).json()["size"] == 1
    assert _integrity(first) == "ok"


def test_parallel_distinct_creates_all_land_with_unique_ids(registry_server_factory: RegistryFactory) -> None:
    first = registry_server_factory()
    second = registry_server_factory(db=first.db)
    model = httpx.post(f"{first.api()}/registered_models", json={"name": "m"}).json()
    urls = [f"{server.api()}/model_versions" for server in (first, second)]
    bodies = [{"name": f"v{i}", "registeredModelId": model["id"]} for i in range(16)]
    responses = _post_all(urls, bodies)
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 16
    listed = httpx.get(f"{second.api()}/registered_models/{model['id']}/versions", params={"pageSize": "100"})
    assert sorted(v["name"] for v in listed.json()["items"]) == sorted(b["name"] for b in bodies)
