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
            status.update(
                observedGeneration=generation,
                url=f"https://{name}-{ns}.apps.example.com",
                address={"url": f"http://{name}-predictor.{ns}.svc.cluster.local"},
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
