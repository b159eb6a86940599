"""CRD schemas from tests/specs made strict, for the manifest checks and the fake Kubernetes API."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are MBs of YAML: 2-3x faster in C


def strict_schema(schema: Any) -> Any:
    """Copy of an OpenAPI schema where every object with properties rejects unknown fields."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict_schema(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def strict_crd_schema(crd_path: Path, version: str) -> dict[str, Any] | None:
    """The strict openAPIV3Schema the CRD at ``crd_path`` serves for ``version``; None if it does not."""
    crd = yaml.load(crd_path.read_text(encoding="utf-8"), Loader=_LOADER)
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            return strict_schema(served["schema"]["openAPIV3Schema"])
    return None
