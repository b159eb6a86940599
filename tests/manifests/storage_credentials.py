"""Storage-credential consistency: the `storage.key` our InferenceService names exists where KServe looks.

KServe's storage initializer resolves `spec.predictor.model.storage.key` in the namespace's
`storage-config` Secret. On OpenShift AI, odh-model-controller builds that Secret from every data
connection Secret (label `opendatahub.io/managed: "true"`, annotation `opendatahub.io/connection-type:
s3`), keyed by the Secret's name; on plain Kubernetes deploy.sh writes the entry itself. The check reads
what `deploy.sh --dry-run --overlay NAME` would apply and the InferenceService `modelpipe deploy` builds
with the deploy-model Task's defaults.
"""

from __future__ import annotations

import base64
import binascii
import functools
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.manifests.checks import Doc, Problems, _env_template_keys, load_all, tasks_by_name

STORAGE_CONFIG = "storage-config"
# The data connection keys odh-model-controller turns into a storage-config entry.
DATA_CONNECTION_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_S3_ENDPOINT",
    "AWS_DEFAULT_REGION",
    "AWS_S3_BUCKET",
)


@functools.cache
def deploy_dry_run(root: Path, overlay: str) -> str:
    """`deploy.sh --dry-run --overlay OVERLAY` with every .env.template key filled (placeholders)."""
    values = {k: f"placeholder-{k.lower().replace('_', '-')}" for k in _env_template_keys(root)}
    values.update(
        NAMESPACE="modelpipe",
        TOOLS_IMAGE="quay.io/x/tools:1.0",
        RUNTIME_IMAGE_REPO="quay.io/x/runtime",
        REGISTRY_AUTH_FILE="",
        AWS_S3_ENDPOINT="http://minio:9000",
    )
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
        return subprocess.run(
            [str(root / "deploy.sh"), "--dry-run", "--overlay", overlay, "--env-file", str(env_file)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout


def isvc_storage_key(root: Path) -> str:
    """The `storage.key` of the InferenceService deploy builds from the deploy-model Task's defaults."""
    from modelpipe.targets.kserve import IsvcSpec, build_inference_service

    params = {p["name"]: p.get("default") for p in tasks_by_name(root)["deploy-model"]["spec"]["params"]}
    isvc = build_inference_service(
        IsvcSpec(
            name="m",
            namespace="modelpipe",
            model_uri="s3://modelpipe/m",
            serving_runtime=str(params["serving-runtime"]),
            storage_key=f"aws-connection-{params['data-connection']}",
        )
    )
    return str(isvc["spec"]["predictor"]["model"]["storage"]["key"])


def _secrets(out: str) -> dict[str, Doc]:
    """Every Secret in the dry-run output, layout and values merged by name."""
    merged: dict[str, Doc] = {}
    for doc in load_all(out.replace("<redacted>", "x")):
        if doc.get("kind") != "Secret":
            continue
        into = merged.setdefault(doc["metadata"]["name"], {"labels": {}, "annotations": {}, "data": {}})
        for field in ("labels", "annotations"):
            into[field].update(doc["metadata"].get(field) or {})
        into["data"].update(doc.get("data") or {})
    return merged


def _data_connection_problems(secrets: dict[str, Any], key: str, overlay: str) -> Problems:
    connection = secrets.get(key)
    if connection is None:
        return [f"--overlay {overlay}: storage.key {key} names no data connection Secret deploy.sh creates"]
    return [
        f"--overlay {overlay}: data connection Secret {key} lacks {name}"
        for name in DATA_CONNECTION_KEYS
        if name not in connection["data"]
    ]


def check_storage_credentials(root: Path, overlay: str) -> Problems:
    """What KServe needs to resolve our `storage.key` is among the objects the overlay's deploy creates."""
    key = isvc_storage_key(root)
    secrets = _secrets(deploy_dry_run(root, overlay))
    problems = _data_connection_problems(secrets, key, overlay)
    config = secrets.get(STORAGE_CONFIG)
    if overlay == "kubernetes":
        if config is None:
            problems.append(f"--overlay kubernetes: deploy.sh creates no Secret {STORAGE_CONFIG}")
        elif key not in config["data"]:
            problems.append(
                f"--overlay kubernetes: Secret {STORAGE_CONFIG} has no entry {key} "
                f"(the InferenceService's storage.key); it has {sorted(config['data'])}"
            )
        return problems
    # OpenShift AI owns storage-config: writing it would fight odh-model-controller.
    if config is not None:
        problems.append(f"--overlay {overlay}: deploy.sh writes {STORAGE_CONFIG}, which OpenShift AI owns")
    connection = secrets.get(key)
    if connection is not None:
        if connection["labels"].get("opendatahub.io/managed") != "true":
            problems.append(
                f"--overlay {overlay}: Secret {key} lacks label opendatahub.io/managed=true, so "
                f"odh-model-controller adds no {STORAGE_CONFIG} entry for it"
            )
        if connection["annotations"].get("opendatahub.io/connection-type") != "s3":
            problems.append(f"--overlay {overlay}: Secret {key} is not annotated connection-type s3")
    return problems


def dry_run_schema_problems(root: Path, overlay: str, specs: Path) -> Problems:
    """Every object `deploy.sh --dry-run --overlay OVERLAY` prints is valid: Tekton/KServe objects against
    their CRDs, core objects (Secrets included) against the Kubernetes client models."""
    from tests.manifests.checks import _crd_problems
    from tests.manifests.schemas import CORE_MODELS, model_errors

    problems: Problems = []
    for doc in load_all(deploy_dry_run(root, overlay).replace("<redacted>", "eA==")):
        where = f"--overlay {overlay} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        model = CORE_MODELS.get((doc.get("apiVersion", ""), doc.get("kind", "")))
        if model is not None:
            # The client models type Secret data as bytes; the manifest holds base64 text.
            body = {k: v for k, v in doc.items() if not (doc["kind"] == "Secret" and k == "data")}
            problems += list(model_errors(body, model, where))
            problems += [
                f"{where}.data.{key}: not base64 text"
                for key, value in (doc.get("data") or {}).items()
                if doc["kind"] == "Secret" and not _is_base64(value)
            ]
        problems += _crd_problems(specs, doc, where)
    return problems


def _is_base64(value: Any) -> bool:
    try:
        base64.b64decode(str(value), validate=True)
    except binascii.Error:
        return False
    return isinstance(value, str)
