"""In-process registry app over a fresh SQLite file (no network, no subprocess)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from modelpipe.local.registry import RegistryStore, create_app

V1 = "/api/model_registry/v1"


class Api:
    """Raw HTTP helpers on a TestClient: paths are relative to one API prefix."""

    def __init__(self, client: TestClient, prefix: str = V1) -> None:
        self.client = client
        self.prefix = prefix

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(self.prefix + path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.client.post(self.prefix + path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.client.patch(self.prefix + path, json=body)

    def created(self, path: str, body: Any) -> dict[str, Any]:
        response = self.post(path, body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def model(self, name: str = "m", **fields: Any) -> dict[str, Any]:
        return self.created("/registered_models", {"name": name, **fields})

    def version(self, model_id: str, name: str = "v1", **fields: Any) -> dict[str, Any]:
        return self.created("/model_versions", {"name": name, "registeredModelId": model_id, **fields})


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Build an Api over a fresh DB: ``make_api(token=..., api_versions=..., prefix=...)``."""
    clients: list[TestClient] = []

    def factory(*, prefix: str = V1, **app_options: Any) -> Api:
        store = RegistryStore(tmp_path / f"registry-{len(clients)}.db")
        client = TestClient(create_app(store, **app_options))
        clients.append(client)
        return Api(client, prefix)

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
