"""Hostile requests against the registry server: schemathesis over the OpenAPI spec, both prefixes.

Positive and negative (schema-violating) cases for every implemented operation; the only property asserted
per request is "no 5xx". Afterwards every list and the overview page still answer, so no accepted request
stored something that breaks later reads. Bounded: a few examples per operation, one server per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.fixtures.registry import RegistryServer
from tests.integration.registry.test_openapi_conformance import _spec_for

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 4
LISTS = (
    "registered_models",
    "model_versions",
    "model_artifacts",
    "artifacts",
    "serving_environments",
    "inference_services",
)


@pytest.fixture(scope="module")
def hostile_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RegistryServer]:
    """One server for the module, seeded so generated ids and parents sometimes exist."""
    tmp = tmp_path_factory.mktemp("registry-fuzz")
    server = RegistryServer(
        tmp / "r.db",
        api_versions=("v1", "v1alpha3"),
        token=None,
        log_path=tmp / "r.log",
    )
    server.start()
    api = server.api("v1")
    model = httpx.post(f"{api}/registered_models", json={"name": "seed"}).json()
    version = httpx.post(
        f"{api}/model_versions", json={"name": "v1", "registeredModelId": model["id"]}
    ).json()
    httpx.post(
        f"{api}/model_versions/{version['id']}/artifacts",
        json={"artifactType": "model-artifact"},
    )
    env = httpx.post(f"{api}/serving_environments", json={"name": "ns"}).json()
    httpx.post(
        f"{api}/inference_services",
        json={"registeredModelId": model["id"], "servingEnvironmentId": env["id"]},
    )
    try:
        yield server
    finally:
        server.stop()


def _load(version: str) -> Any:
    schema = schemathesis.openapi.from_dict(_spec_for(version))
    schema.config.phases.coverage.enabled = False
    schema.config.phases.stateful.enabled = False
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
    )
    return schema


_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
schema_v1 = _load("v1")
schema_v1alpha3 = _load("v1alpha3")


@schema_v1.parametrize()
@_SETTINGS
def test_v1_hostile_requests_get_no_5xx(case: Any, hostile_registry: RegistryServer) -> None:
    case.call_and_validate(base_url=hostile_registry.url, checks=[not_a_server_error])


@schema_v1alpha3.parametrize()
@_SETTINGS
def test_v1alpha3_hostile_requests_get_no_5xx(case: Any, hostile_registry: RegistryServer) -> None:
    case.call_and_validate(base_url=hostile_registry.url, checks=[not_a_server_error])


def test_every_list_still_answers_after_the_fuzzing(
    hostile_registry: RegistryServer,
) -> None:
    for version in ("v1", "v1alpha3"):
        for name in LISTS:
            response = httpx.get(f"{hostile_registry.api(version)}/{name}", params={"pageSize": 1000})
            assert response.status_code == 200, (version, name, response.text[:300])
    assert httpx.get(hostile_registry.url + "/").status_code == 200
