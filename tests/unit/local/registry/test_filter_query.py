"""filterQuery on list endpoints: the registry's SQL-like filter language."""

from __future__ import annotations

import pytest

from tests.unit.local.registry.conftest import Api


def _string(value: str) -> dict[str, str]:
    return {"metadataType": "MetadataStringValue", "string_value": value}


def _double(value: float) -> dict[str, object]:
    return {"metadataType": "MetadataDoubleValue", "double_value": value}


@pytest.fixture
def seeded(api: Api) -> Api:
    diffusers = _string("diffusers")
    api.model("sd-tiny", customProperties={"framework": diffusers, "clip": _double(0.31)})
    api.model("sd-base", state="ARCHIVED", customProperties={"framework": diffusers, "clip": _double(0.2)})
    api.model("llm-small", customProperties={"framework": _string("vllm"), "mlflow.source": _string("x")})
    return api


def _names(api: Api, query: str, path: str = "/registered_models") -> list[str]:
    response = api.get(path, filterQuery=query)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name = 'sd-tiny'", ["sd-tiny"]),
        ('name LIKE "sd-%"', ["sd-tiny", "sd-base"]),
        ("name LIKE 'SD-%'", []),
        ("name ILIKE 'SD-%'", ["sd-tiny", "sd-base"]),
        ("state = 'LIVE'", ["sd-tiny", "llm-small"]),
        ("framework = 'diffusers' AND clip > 0.25", ["sd-tiny"]),
        ("framework.string_value = 'vllm' OR clip < 0.25", ["sd-base", "llm-small"]),
        ("(name = 'sd-tiny' OR name = 'sd-base') AND state = 'ARCHIVED'", ["sd-base"]),
        ("name IN ('sd-tiny', 'llm-small')", ["sd-tiny", "llm-small"]),
        ("`mlflow.source` = 'x'", ["llm-small"]),
        ("id = '1'", ["sd-tiny"]),
        ("name != 'sd-tiny'", ["sd-base", "llm-small"]),
    ],
)
def test_filter_query_selects_matching_models(seeded: Api, query: str, expected: list[str]) -> None:
    assert _names(seeded, query) == expected


def test_filter_query_on_version_artifacts_by_type_field(api: Api) -> None:
    version = api.version(api.model()["id"])
    path = f"/model_versions/{version['id']}/artifacts"
    api.created(path, {"artifactType": "metric", "name": "clip", "value": 0.31})
    api.created(path, {"artifactType": "metric", "name": "p95", "value": 4.2})
    assert _names(api, "value > 1", path) == ["p95"]


@pytest.mark.parametrize("query", ["name =", "name = 'x' AND", "(name = 'x'", "name ~ 'x'", "name = 'x' 'y'"])
def test_malformed_filter_query_is_400(api: Api, query: str) -> None:
    response = api.get("/registered_models", filterQuery=query)
    assert response.status_code == 400
    assert response.json()["message"].startswith("filterQuery")
