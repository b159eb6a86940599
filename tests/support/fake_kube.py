"""A loopback Kubernetes API server speaking the few InferenceService calls deploy uses.

Every object written is validated against the KServe CRD's openAPIV3Schema (made strict: unknown fields are
rejected wherever the schema lists ``properties``), so a misspelt field fails like a real API server would
prune or reject it. Status is simulated: an InferenceService turns Ready (with url, address and
observedGeneration) after a configurable number of reads, or never.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.support.crd import strict_crd_schema
from tests.support.tools import SPECS_DIR

CRD_PATH = SPECS_DIR / "kserve" / "serving.kserve.io_inferenceservices.yaml"
_PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices(?:/(?P<name>[^/?]+))?/?$"
)
# The core and RBAC objects deploy creates next to an InferenceService (token access) or reads (claims).
_OTHER_PATH = re.compile(
    r"^/(?:api/v1|apis/rbac\.authorization\.k8s\.io/v1)/namespaces/(?P<ns>[^/]+)/"
    r"(?P<plural>serviceaccounts|secrets|persistentvolumeclaims|roles|rolebindings)(?:/(?P<name>[^/?]+))?/?$"
)
_KINDS = {
    "serviceaccounts": ("v1", "ServiceAccount"),
    "secrets": ("v1", "Secret"),
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim"),
    "roles": ("rbac.authorization.k8s.io/v1", "Role"),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding"),
}
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@functools.cache
def isvc_validator() -> jsonschema.Draft7Validator:
    """Strict validator for InferenceService v1beta1 built from the CRD in tests/specs/kserve/."""
    schema = strict_crd_schema(CRD_PATH, "v1beta1")
    assert schema is not None, f"{CRD_PATH} serves no v1beta1"
    return jsonschema.Draft7Validator(schema)


def validation_errors(obj: dict[str, Any]) -> list[str]:
    """Why the API server would refuse ``obj`` (CRD schema plus the ObjectMeta rules deploy touches)."""
    errors = [
        f"{'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in isvc_validator().iter_errors(obj)
    ]
    metadata = obj.get("metadata") or {}
    for kind in ("labels", "annotations"):
        for key, value in (metadata.get(kind) or {}).items():
            if not isinstance(value, str):
                errors.append(f"metadata.{kind}.{key}: must be a string, got {type(value).__name__}")
            elif kind == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                errors.append(f"metadata.labels.{key}: invalid label value {value!r}")
    if obj.get("apiVersion") != "serving.kserve.io/v1beta1" or obj.get("kind") != "InferenceService":
        errors.append("apiVersion/kind must be serving.kserve.io/v1beta1 InferenceService")
    return errors


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str | None
    authorization: str | None
    body: Any


@dataclass
class FakeKube:
    """The fake API server. ``ready_after_reads``: GETs after a spec change before Ready (None: never)."""

    token: str = "fake-kube-token"
    ready_after_reads: int | None = 1
    # The next N GETs of an existing object answer 503, as an API server restarting would.
    unavailable_gets: int = 0
    pending_conditions: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"type": "PredictorReady", "status": "False", "reason": "MinimumReplicasUnavailable",
             "message": "Deployment does not have minimum availability."},
            {"type": "Ready", "status": "False", "reason": "MinimumReplicasUnavailable"},
        ]
    )  # fmt: skip
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Core/RBAC objects by (plural, namespace, name), e.g. ("roles", "models", "tiny-sd-view-role").
    others: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # Per InferenceService: the predictor revision that took 100% of the traffic last.
    _rolled_out: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    _reads: dict[tuple[str, str], int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _resource_version: int = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKube:
        isvc_validator()  # parse the 2 MB CRD before the first request, not inside a timed wait
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def write_kubeconfig(self, path: Path, namespace: str = "models") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "pipeline", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {
                        "cluster": "fake",
                        "user": "pipeline",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def sent(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    # -- behaviour ---------------------------------------------------------------------------------------

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _status(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        """Advance the simulated controller on each read."""
        self._reads[key] = self._reads.get(key, 0) + 1
        generation = obj["metadata"]["generation"]
        status = obj.setdefault("status", {})
        if self.ready_after_reads is not None and self._reads[key] >= self.ready_after_reads:
            name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
            internal = f"http://{name}-predictor.{ns}.svc.cluster.local"
            status.update(
                observedGeneration=generation,
                # External only when exposed, as KServe / odh-model-controller report it.
                url=f"https://{name}-{ns}.apps.example.com" if _exposed(obj) else internal,
                address={"url": internal},
                components={"predictor": self._predictor_status(key, obj)},
                conditions=[
                    {"type": "PredictorReady", "status": "True"},
                    {"type": "IngressReady", "status": "True"},
                    {"type": "Ready", "status": "True"},
                ],
                modelStatus={
                    "transitionStatus": "UpToDate",
                    "states": {"activeModelState": "Loaded"},
                },
            )
        elif "observedGeneration" not in status:
            status.update(
                observedGeneration=generation,
                conditions=copy.deepcopy(self.pending_conditions),
            )

    def _predictor_status(self, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        """Knative-style revisions: a canary splits traffic with the last rolled-out revision."""
        latest = f"{key[1]}-predictor-{obj['metadata']['generation']:05d}"
        canary = obj["spec"]["predictor"].get("canaryTrafficPercent")
        previous = self._rolled_out.get(key)
        if canary is None or previous is None or previous == latest:
            self._rolled_out[key] = latest
            return {"latestReadyRevision": latest, "traffic": [
                {"revisionName": latest, "percent": 100, "latestRevision": True}
            ]}  # fmt: skip
        return {
            "latestReadyRevision": latest,
            "previousRolledoutCanaryRevision": previous,
            "traffic": [
                {"revisionName": latest, "percent": canary, "latestRevision": True, "tag": "latest"},
                {"revisionName": previous, "percent": 100 - canary, "latestRevision": False, "tag": "prev"},
            ],
        }

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        self.requests.append(
            Recorded(
                method,
                path,
                headers.get("content-type"),
                headers.get("authorization"),
                body,
            )
        )
        if headers.get("authorization") != f"Bearer {self.token}":
            return _status_body(401, "Unauthorized", "Unauthorized")
        other = _OTHER_PATH.match(path.split("?", 1)[0])
        if other:
            with self._lock:
                return self._handle_other(method, other["plural"], other["ns"], other["name"], headers, body)
        match = _PATH.match(path.split("?", 1)[0])
        if not match:
            return _status_body(
                404,
                "NotFound",
                f"the server could not find the requested resource ({path})",
            )
        ns, name = match["ns"], match["name"]
        with self._lock:
            if method == "POST" and name is None:
                return self._create(ns, body)
            if name is None:
                return _status_body(
                    405,
                    "MethodNotAllowed",
                    f"{method} on a collection is not served here",
                )
            key = (ns, name)
            if key not in self.objects:
                return _status_body(
                    404,
                    "NotFound",
                    f'inferenceservices.serving.kserve.io "{name}" not found',
                )
            if method == "GET" and self.unavailable_gets > 0:
                self.unavailable_gets -= 1
                return _status_body(
                    503, "ServiceUnavailable", "the server is currently unable to handle the request"
                )
            if method == "GET":
                self._status(key, self.objects[key])
                return 200, copy.deepcopy(self.objects[key])
            if method == "PATCH":
                if headers.get("content-type") != "application/merge-patch+json":
                    return _status_body(
                        415,
                        "UnsupportedMediaType",
                        f"unsupported patch {headers.get('content-type')}",
                    )
                return self._patch(key, body)
        return _status_body(405, "MethodNotAllowed", f"{method} not served")

    def _handle_other(
        self, method: str, plural: str, ns: str, name: str | None, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        api_version, kind = _KINDS[plural]
        if method == "POST" and name is None:
            obj = copy.deepcopy(body)
            errors = _core_errors(obj, api_version, kind, ns)
            if errors:
                return _status_body(
                    422, "Invalid", f'{kind} "{obj["metadata"].get("name")}" is invalid: {errors}'
                )
            key = (plural, ns, obj["metadata"]["name"])
            if key in self.others:
                return _status_body(409, "AlreadyExists", f'{plural} "{key[2]}" already exists')
            obj["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), resourceVersion=self._next_version())
            self.others[key] = obj
            return 201, copy.deepcopy(obj)
        key = (plural, ns, name or "")
        if key not in self.others:
            return _status_body(404, "NotFound", f'{plural} "{name}" not found')
        if method == "GET":
            return 200, copy.deepcopy(self.others[key])
        if method == "PATCH" and headers.get("content-type") == "application/merge-patch+json":
            merged = merge_patch(self.others[key], body)
            errors = _core_errors(merged, api_version, kind, ns)
            if errors:
                return _status_body(422, "Invalid", f'{kind} "{name}" is invalid: {errors}')
            self.others[key] = merged
            return 200, copy.deepcopy(merged)
        return _status_body(405, "MethodNotAllowed", f"{method} {headers.get('content-type')} not served")

    def _create(self, ns: str, body: Any) -> tuple[int, dict[str, Any]]:
        obj = copy.deepcopy(body)
        obj.pop("status", None)
        metadata = obj.setdefault("metadata", {})
        if metadata.get("namespace", ns) != ns:
            return _status_body(
                400,
                "BadRequest",
                "the namespace of the object does not match the request",
            )
        errors = validation_errors(obj)
        if errors:
            return _invalid(metadata.get("name", "?"), errors)
        key = (ns, metadata["name"])
        if key in self.objects:
            return _status_body(
                409,
                "AlreadyExists",
                f'inferenceservices.serving.kserve.io "{key[1]}" already exists',
            )
        metadata.update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            generation=1,
            resourceVersion=self._next_version(),
        )
        self.objects[key] = obj
        self._reads[key] = 0
        return 201, copy.deepcopy(obj)

    def _patch(self, key: tuple[str, str], patch: Any) -> tuple[int, dict[str, Any]]:
        current = self.objects[key]
        patch = copy.deepcopy(patch)
        if isinstance(patch, dict):
            patch.pop("status", None)
        merged = merge_patch(current, patch)
        errors = validation_errors({k: v for k, v in merged.items() if k != "status"})
        if errors:
            return _invalid(key[1], errors)
        for immutable in ("uid", "name", "namespace", "generation"):
            merged["metadata"][immutable] = current["metadata"][immutable]
        if merged.get("spec") != current.get("spec"):
            merged["metadata"]["generation"] = current["metadata"]["generation"] + 1
            self._reads[key] = 0
        merged["metadata"]["resourceVersion"] = self._next_version()
        self.objects[key] = merged
        return 200, copy.deepcopy(merged)


def _exposed(isvc: dict[str, Any]) -> bool:
    labels = isvc["metadata"].get("labels") or {}
    if isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode") == "Serverless":
        return labels.get("networking.knative.dev/visibility") != "cluster-local"
    return labels.get("networking.kserve.io/visibility") == "exposed"


def _core_errors(obj: dict[str, Any], api_version: str, kind: str, ns: str) -> list[str]:
    """Unknown or mistyped fields per the kubernetes client's models, plus the kind and namespace."""
    from tests.manifests.schemas import CORE_MODELS, model_errors

    errors = list(model_errors(obj, CORE_MODELS[(api_version, kind)], kind))
    if obj.get("apiVersion") != api_version or obj.get("kind") != kind:
        errors.append(f"apiVersion/kind must be {api_version} {kind}")
    if obj.get("metadata", {}).get("namespace", ns) != ns:
        errors.append("metadata.namespace does not match the request")
    return errors


def _status_body(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    }  # fmt: skip


def _invalid(name: str, errors: list[str]) -> tuple[int, dict[str, Any]]:
    message = f'InferenceService.serving.kserve.io "{name}" is invalid: ' + "; ".join(errors)
    return _status_body(422, "Invalid", message)


def _handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                code, payload = _status_body(400, "BadRequest", "body is not JSON")
            else:
                headers = {k.lower(): v for k, v in self.headers.items()}
                code, payload = fake.handle(self.command, self.path, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
