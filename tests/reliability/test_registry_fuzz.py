"""Hostile requests against the registry server: schemathesis over the OpenAPI spec, both prefixes.

Positive and negative (schema-violating) cases for every implemented operation, then the campaign's own
payloads (surrogates, int64 overflow, deep nesting, hostile filters and page tokens); the property asserted
per request is "no 5xx". Afterwards every list and the overview page still answer, so no accepted request
stored something that breaks later reads. Bounded: a few examples per operation, one server per module.
"""

from __future__ import annotations

import base64
import functools
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


# Beyond the spec: what the issue 13 campaign sent. Strings with lone surrogates, integers past int64,
# deep nesting, wrong JSON types where an artifactType or id is expected, filter queries and page tokens
# built from the grammar's pieces.
_TEXT = st.lists(
    st.one_of(st.characters(), st.sampled_from(["\udc00", "\ud83d", "\x00", "'", '"', "(", ")"])), max_size=12
).map("".join)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)),
    max_leaves=8,
)
_FIELDS = st.sampled_from(
    ["name", "description", "externalId", "customProperties", "artifactType", "uri", "registeredModelId",
     "servingEnvironmentId", "modelVersionId", "state", "step", "value", "ext_id"]
)  # fmt: skip
_BODIES = st.one_of(
    st.dictionaries(_FIELDS, _JSON, max_size=4),
    st.integers(min_value=2, max_value=3000).map(
        lambda depth: '{"name": "n", "customProperties": ' + "[" * depth + "]" * depth + "}"
    ),
)
_QUERY_PIECES = st.sampled_from(
    ["name", "id", "state", "x.int_value", "=", "!=", ">", "LIKE", "IN", "AND", "OR", "(", ")", ",", "'a'",
     "99999999999999999999999", "-1", "1e999", "TRUE", "`odd name`"]
)  # fmt: skip
_QUERIES = st.one_of(
    st.lists(_QUERY_PIECES, max_size=30).map(" ".join),
    st.integers(min_value=1, max_value=2000).map(lambda depth: "(" * depth + "id = 1" + ")" * depth),
)
_TOKENS = st.one_of(
    _TEXT,
    st.tuples(st.sampled_from(["ID", "CREATE_TIME"]), _SCALARS, _SCALARS).map(
        lambda t: base64.urlsafe_b64encode(json.dumps(list(t)).encode()).decode()
    ),
)
_WRITES = st.sampled_from(
    [("POST", "/registered_models"), ("POST", "/model_versions"), ("POST", "/artifacts"),
     ("POST", "/model_versions/{version}/artifacts"), ("POST", "/serving_environments"),
     ("POST", "/inference_services"), ("PATCH", "/registered_models/{model}"),
     ("PATCH", "/artifacts/{artifact}"), ("PATCH", "/model_versions/{version}")]
)  # fmt: skip


@functools.cache
def _ids(server: RegistryServer) -> dict[str, str]:
    api = server.api("v1")
    return {
        "model": httpx.get(f"{api}/registered_models").json()["items"][0]["id"],
        "version": httpx.get(f"{api}/model_versions").json()["items"][0]["id"],
        "artifact": httpx.get(f"{api}/artifacts").json()["items"][0]["id"],
    }


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(write=_WRITES, body=_BODIES, query=_QUERIES, token=_TOKENS, artifact_type=_TEXT)
def test_campaign_payloads_get_no_5xx(
    hostile_registry: RegistryServer,
    write: tuple[str, str],
    body: Any,
    query: str,
    token: str,
    artifact_type: str,
) -> None:
    api = hostile_registry.api("v1")
    method, path = write
    raw = body if isinstance(body, str) else json.dumps(body, ensure_ascii=True)
    response = httpx.request(
        method,
        api + path.format(**_ids(hostile_registry)),
        content=raw.encode("ascii"),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code < 500, (method, path, raw[:200], response.text[:300])
    for name, value in (("filterQuery", query), ("nextPageToken", token), ("artifactType", artifact_type)):
        # Raw UTF-8 bytes (lone surrogates included), percent-encoded as a hostile client would send them.
        encoded = urllib.parse.quote(value.encode("utf-8", "surrogatepass"), safe="")
        listed = httpx.get(f"{api}/artifacts?{name}={encoded}")
        assert listed.status_code < 500, (name, value[:200], listed.text[:300])
    for name in ("registered_models", "model_versions", "artifacts"):
        assert httpx.get(f"{api}/{name}").status_code == 200, name
