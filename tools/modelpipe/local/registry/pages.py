"""The read-only overview page at ``GET /``: models, versions, labels and properties, dashboard style."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

from modelpipe.local.registry.schemas import (
    INFERENCE_SERVICE,
    MODEL_ARTIFACT,
    MODEL_VERSION,
    REGISTERED_MODEL,
)
from modelpipe.local.registry.store import RegistryStore

_STYLE = """
body{font-family:sans-serif;margin:2em;color:#151515}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}.label{display:inline-block;background:#e7f1fa;border-radius:1em;padding:0 .6em;margin:1px}
.muted{color:#6a6e73}
"""


def labels_and_properties(custom: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """Split customProperties as the OpenShift AI dashboard: empty strings are labels, others properties."""
    labels, properties = [], []
    for key, value in sorted(custom.items()):
        kind = value.get("metadataType")
        if kind == "MetadataStringValue" and value.get("string_value") == "":
            labels.append(key)
        elif kind == "MetadataStringValue":
            properties.append((key, str(value["string_value"])))
        elif kind in ("MetadataIntValue", "MetadataDoubleValue", "MetadataBoolValue"):
            field = {"MetadataIntValue": "int_value", "MetadataDoubleValue": "double_value"}.get(
                kind, "bool_value"
            )
            properties.append((key, str(value.get(field))))
    return labels, properties


def describe_location(uri: str) -> list[tuple[str, str]]:
    """An ``s3://bucket/path?endpoint=...&defaultRegion=...`` URI split into the parts the dashboard shows."""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        return [("URI", uri)]
    query = parse_qs(parts.query)
    rows = [
        ("Endpoint", query.get("endpoint", [""])[0]),
        ("Bucket", parts.netloc),
        ("Path", parts.path.lstrip("/")),
    ]
    if "defaultRegion" in query:
        rows.append(("Region", query["defaultRegion"][0]))
    return rows


def render_overview(store: RegistryStore) -> str:
    """The whole page as HTML (every value escaped)."""
    models = [model for _, model in store.all_of(REGISTERED_MODEL)]
    versions = [version for _, version in store.all_of(MODEL_VERSION)]
    artifacts = store.all_of(MODEL_ARTIFACT)
    services = [service for _, service in store.all_of(INFERENCE_SERVICE)]
    sections = [_model_section(m, versions, artifacts, services) for m in models]
    body = "".join(sections) or '<p class="muted">No registered models yet.</p>'
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Model Registry</title>"
        f"<style>{_STYLE}</style></head><body><h1>Model Registry</h1>"
        f"<p class='muted'>{len(models)} registered model(s), read-only view.</p>{body}</body></html>"
    )


Artifacts = list[tuple[str | None, dict[str, Any]]]


def _model_section(
    model: dict[str, Any],
    versions: list[dict[str, Any]],
    artifacts: Artifacts,
    services: list[dict[str, Any]],
) -> str:
    labels, properties = labels_and_properties(model["customProperties"])
    own_versions = [v for v in versions if v.get("registeredModelId") == model["id"]]
    rows = "".join(_version_row(v, artifacts, services) for v in reversed(own_versions))
    facts = [("ID", model["id"]), ("Owner", model.get("owner", "")), ("State", model["state"])]
    return (
        f"<h2 id='model-{escape(model['id'])}'>{escape(model['name'])}</h2>"
        f"<p>{escape(model.get('description', ''))}</p>{_labels(labels)}{_table(facts + properties)}"
        "<h3>Versions</h3><table><tr><th>Version</th><th>Labels</th><th>Properties</th>"
        f"<th>Model location</th><th>Deployments</th><th>Author</th><th>Created</th></tr>{rows}</table>"
    )


def _version_row(version: dict[str, Any], artifacts: Artifacts, services: list[dict[str, Any]]) -> str:
    labels, properties = labels_and_properties(version["customProperties"])
    location = [
        row
        for parent_id, artifact in artifacts
        if parent_id == version["id"]
        for row in [*describe_location(artifact.get("uri", "")), ("Format", _format(artifact))]
    ]
    deployments = [
        (
            s["name"],
            f"{s.get('desiredState', '')} {s['customProperties'].get('url', {}).get('string_value', '')}",
        )
        for s in services
        if s.get("modelVersionId") == version["id"]
    ]
    return (
        f"<tr><td><b>{escape(version['name'])}</b><br><span class='muted'>id {escape(version['id'])}, "
        f"{escape(version['state'])}</span><br>{escape(version.get('description', ''))}</td>"
        f"<td>{_labels(labels)}</td><td>{_table(properties)}</td><td>{_table(location)}</td>"
        f"<td>{_table(deployments)}</td><td>{escape(version.get('author', ''))}</td>"
        f"<td>{_time(version['createTimeSinceEpoch'])}</td></tr>"
    )


def _format(artifact: dict[str, Any]) -> str:
    return " ".join(filter(None, (artifact.get("modelFormatName"), artifact.get("modelFormatVersion"))))


def _labels(labels: list[str]) -> str:
    return "".join(f"<span class='label'>{escape(label)}</span>" for label in labels)


def _table(rows: list[tuple[str, str]]) -> str:
    if not rows:
        return ""
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _time(epoch_ms: str) -> str:
    return dt.datetime.fromtimestamp(int(epoch_ms) / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
