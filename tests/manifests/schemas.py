"""Strict validation of rendered objects: CRD schemas from tests/specs, core kinds via the k8s client."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes.client

from tests.support.crd import strict_crd_schema

# (group, kind) -> CRD file under tests/specs, for the custom resources the bundle ships or creates.
CRD_FILES: dict[tuple[str, str], str] = {
    ("tekton.dev", "Task"): "tekton/300-task.yaml",
    ("tekton.dev", "Pipeline"): "tekton/300-pipeline.yaml",
    ("tekton.dev", "PipelineRun"): "tekton/300-pipelinerun.yaml",
    ("tekton.dev", "TaskRun"): "tekton/300-taskrun.yaml",
    (
        "serving.kserve.io",
        "ServingRuntime",
    ): "kserve/serving.kserve.io_servingruntimes.yaml",
    (
        "serving.kserve.io",
        "InferenceService",
    ): "kserve/serving.kserve.io_inferenceservices.yaml",
}

# Core kinds checked field by field against the kubernetes client's models (unknown fields rejected).
CORE_MODELS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
}

_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")
_PRIMITIVES = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "object": object,
    "datetime": str,
}


def crd_schema(specs_dir: Path, group: str, kind: str, version: str) -> dict[str, Any] | None:
    """The strict openAPIV3Schema of ``kind`` at ``version``; None if the spec does not serve it."""
    relative = CRD_FILES.get((group, kind))
    if relative is None:
        return None
    return strict_crd_schema(specs_dir / relative, version)


def task_spec_schema(specs_dir: Path) -> dict[str, Any]:
    """Strict schema of a v1 Task's spec, for taskSpecs embedded in Pipelines (the CRD leaves them open)."""
    schema = crd_schema(specs_dir, "tekton.dev", "Task", "v1")
    assert schema is not None
    return schema["properties"]["spec"]


def schema_errors(schema: Mapping[str, Any], obj: Any, where: str) -> list[str]:
    """One line per violation: where, JSON path and message."""
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{where}: {'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message[:300]}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _model(name: str) -> type:
    return getattr(kubernetes.client, name)


def _check_value(value: Any, type_name: str, path: str) -> Iterator[str]:
    if value is None:
        return
    if match := _LIST.match(type_name):
        if not isinstance(value, list):
            yield f"{path}: expected a list"
            return
        for index, item in enumerate(value):
            yield from _check_value(item, match.group(1), f"{path}[{index}]")
    elif match := _DICT.match(type_name):
        if not isinstance(value, dict):
            yield f"{path}: expected a mapping"
            return
        for key, item in value.items():
            yield from _check_value(item, match.group(1), f"{path}.{key}")
    elif type_name in _PRIMITIVES:
        if type_name == "str" and not isinstance(value, str):
            yield f"{path}: expected a string, got {type(value).__name__} (quote it)"
        elif type_name == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            yield f"{path}: expected an integer"
        elif type_name == "bool" and not isinstance(value, bool):
            yield f"{path}: expected a boolean"
    else:
        yield from model_errors(value, type_name, path)


def model_errors(obj: Any, model_name: str, path: str) -> Iterator[str]:
    """Fields of ``obj`` unknown to kubernetes client model ``model_name``, or of the wrong type."""
    if not isinstance(obj, dict):
        yield f"{path}: expected a mapping for {model_name}"
        return
    model = _model(model_name)
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, value in obj.items():
        if key not in by_json:
            yield f"{path}.{key}: unknown field for {model_name}"
            continue
        yield from _check_value(value, model.openapi_types[by_json[key]], f"{path}.{key}")
