"""Create or update a KServe InferenceService the way OpenShift AI does, and wait until it is Ready."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from modelpipe.errors import ConfigError, DeployError
from modelpipe.images import parse_pinned_image
from modelpipe.model_kinds import MODEL_FORMATS, TEXT_TO_IMAGE
from modelpipe.names import MAX_SERVICE_NAME_LENGTH, require_dns_label
from modelpipe.targets.serving_options import (
    DEPLOYMENT_MODES,
    Placement,
    Scaling,
    check_canary,
    check_scaling,
    check_storage,
)

logger = logging.getLogger(__name__)

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"

# Labels the odh-model-controller and the OpenShift AI dashboard read.
LABEL_DASHBOARD = "opendatahub.io/dashboard"
LABEL_REGISTERED_MODEL_ID = "modelregistry.opendatahub.io/registered-model-id"
LABEL_MODEL_VERSION_ID = "modelregistry.opendatahub.io/model-version-id"
LABEL_REGISTRY_NAME = "modelregistry.opendatahub.io/name"
LABEL_INFERENCE_SERVICE_ID = "modelregistry.opendatahub.io/inference-service-id"
ANNOTATION_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
ANNOTATION_DISPLAY_NAME = "openshift.io/display-name"
# Token authentication as the OpenShift AI dashboard turns it on (Authorino / kube-rbac-proxy in front).
ANNOTATION_ENABLE_AUTH = "security.opendatahub.io/enable-auth"
# External exposure as the dashboard sets it: RawDeployment opts in (odh-model-controller then creates a
# Route; plain KServe an Ingress), Serverless is external unless labelled cluster-local.
LABEL_RAW_VISIBILITY = "networking.kserve.io/visibility"
LABEL_KNATIVE_VISIBILITY = "networking.knative.dev/visibility"
# Fields deploy owns that a re-deploy may drop: removed (merge-patch null) when the new body lacks them.
_OWNED_PATHS: tuple[tuple[str, ...], ...] = (
    ("metadata", "labels", LABEL_RAW_VISIBILITY),
    ("metadata", "labels", LABEL_KNATIVE_VISIBILITY),
    ("metadata", "labels", LABEL_REGISTERED_MODEL_ID),
    ("metadata", "labels", LABEL_MODEL_VERSION_ID),
    ("metadata", "annotations", ANNOTATION_ENABLE_AUTH),
    *(("spec", "predictor", f) for f in (
        "canaryTrafficPercent", "scaleMetric", "scaleTarget", "nodeSelector", "tolerations",
        "serviceAccountName",
    )),
    ("spec", "predictor", "model", "storage"),
    ("spec", "predictor", "model", "image"),
)  # fmt: skip
# What the dashboard adds for Serverless (Knative + Istio) deployments.
_SERVERLESS_ANNOTATIONS = {
    "serving.knative.openshift.io/enablePassthrough": "true",
    "sidecar.istio.io/inject": "true",
    "sidecar.istio.io/rewriteAppHTTPProbers": "true",
}
_SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# modelStatus.transitionStatus values after which waiting longer cannot help.
_TERMINAL_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")
_MAX_READ_FAILURES = 3


@dataclass(frozen=True)
class Resources:
    """Predictor container resources; ``gpus`` becomes a limit (and request) on ``gpu_resource``."""

    cpu: str = "4"
    memory: str = "16Gi"
    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"

    def as_spec(self) -> dict[str, dict[str, str]]:
        requests = {"cpu": self.cpu, "memory": self.memory}
        limits = {"cpu": self.cpu, "memory": self.memory}
        if self.gpus:
            requests[self.gpu_resource] = limits[self.gpu_resource] = str(self.gpus)
        return {"requests": requests, "limits": limits}


@dataclass(frozen=True)
class IsvcSpec:
    """Everything that goes into the InferenceService object."""

    name: str
    namespace: str
    model_uri: str
    serving_runtime: str
    model_format: str = MODEL_FORMATS[TEXT_TO_IMAGE]
    runtime_image: str | None = None
    storage_key: str | None = None
    service_account: str | None = None
    registered_model_id: str | None = None
    model_version_id: str | None = None
    registry_name: str | None = None
    deployment_mode: str = "RawDeployment"
    resources: Resources = field(default_factory=Resources)
    scaling: Scaling = field(default_factory=Scaling)
    placement: Placement = field(default_factory=Placement)
    storage: str = "s3"
    expose: bool = False
    auth: bool = False
    canary_percent: int | None = None
    # Appended by KServe to the ServingRuntime's container args (the diffusers model's serving defaults,
    # or vLLM's per-model flags).
    runtime_args: tuple[str, ...] = ()


def validate_spec(spec: IsvcSpec) -> None:
    """Refuse what the API server or KServe would reject later, naming the flag.

    Raises:
        ConfigError: A name, URI, image reference or mode is malformed.
    """
    require_dns_label("--name", spec.name, MAX_SERVICE_NAME_LENGTH)
    require_dns_label("--namespace", spec.namespace)
    check_storage(spec.storage, spec.model_uri)
    if spec.storage == "pvc" and spec.storage_key is not None:
        raise ConfigError(
            "--storage pvc reads the model from the claim: a data connection (storage key) does not apply",
            fix="drop --data-connection or use --storage s3",
        )
    if spec.runtime_image is not None:
        parse_pinned_image(spec.runtime_image)
    if spec.deployment_mode not in DEPLOYMENT_MODES:
        raise ConfigError(
            f"--deploy-mode {spec.deployment_mode!r} unknown", fix=f"use one of {DEPLOYMENT_MODES}"
        )
    check_scaling(spec.scaling, spec.deployment_mode)
    check_canary(spec.canary_percent, spec.deployment_mode)
    if spec.resources.gpus < 0:
        raise ConfigError(f"--gpus {spec.resources.gpus} must be 0 or more", fix="pass 0 for CPU-only")


def build_inference_service(spec: IsvcSpec) -> dict[str, Any]:
    """The InferenceService body: our ServingRuntime, the exact image, S3 URI plus data connection, labels.

    The data connection is referenced as OpenShift AI does: ``storage.key`` names the entry of the
    namespace's ``storage-config`` secret (the data connection name) while ``storageUri`` holds the model.
    """
    labels = {LABEL_DASHBOARD: "true"}
    if spec.registered_model_id is not None and spec.model_version_id is not None:
        labels[LABEL_REGISTERED_MODEL_ID] = spec.registered_model_id
        labels[LABEL_MODEL_VERSION_ID] = spec.model_version_id
        if spec.registry_name:
            labels[LABEL_REGISTRY_NAME] = spec.registry_name
    annotations = {ANNOTATION_DISPLAY_NAME: spec.name, ANNOTATION_DEPLOYMENT_MODE: spec.deployment_mode}
    if spec.deployment_mode == "Serverless":
        annotations.update(_SERVERLESS_ANNOTATIONS)
        if not spec.expose:
            labels[LABEL_KNATIVE_VISIBILITY] = "cluster-local"
    elif spec.expose:
        labels[LABEL_RAW_VISIBILITY] = "exposed"
    if spec.auth:
        annotations[ANNOTATION_ENABLE_AUTH] = "true"
    model: dict[str, Any] = {
        "modelFormat": {"name": spec.model_format},
        "runtime": spec.serving_runtime,
        "storageUri": spec.model_uri,
        "resources": spec.resources.as_spec(),
    }
    if spec.runtime_image is not None:
        model["image"] = spec.runtime_image
    if spec.storage_key is not None:
        model["storage"] = {"key": spec.storage_key}
    if spec.runtime_args:
        model["args"] = list(spec.runtime_args)
    predictor: dict[str, Any] = {
        "minReplicas": spec.scaling.min_replicas,
        "maxReplicas": spec.scaling.upper,
        "model": model,
    }
    if spec.scaling.metric is not None:
        predictor["scaleMetric"] = spec.scaling.metric
    if spec.scaling.target is not None:
        predictor["scaleTarget"] = spec.scaling.target
    if spec.placement.node_selector:
        predictor["nodeSelector"] = dict(spec.placement.node_selector)
    if spec.placement.tolerations:
        predictor["tolerations"] = [dict(t) for t in spec.placement.tolerations]
    if spec.service_account is not None:
        predictor["serviceAccountName"] = spec.service_account
    if spec.canary_percent is not None and spec.canary_percent < 100:
        predictor["canaryTrafficPercent"] = spec.canary_percent
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def kube_client(kubeconfig: Path | None = None, context: str | None = None) -> ApiClient:
    """An API client from ``kubeconfig`` (or the default/KUBECONFIG one), else the pod's service account.

    Raises:
        ConfigError: Neither a kubeconfig nor an in-cluster service account is available.
    """
    try:
        return kube_config.new_client_from_config(
            config_file=str(kubeconfig) if kubeconfig else None, context=context, persist_config=False
        )
    except (kube_config.ConfigException, FileNotFoundError) as err:
        if kubeconfig is not None:
            raise ConfigError(
                f"cannot use kubeconfig {kubeconfig}: {err}", fix="pass a valid --kubeconfig"
            ) from err
        outside = err
    configuration = Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=configuration)
    except kube_config.ConfigException as err:
        raise ConfigError(
            f"no Kubernetes configuration: {outside}; not in a pod either",
            fix="pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account",
        ) from err
    return ApiClient(configuration)


def default_namespace(kubeconfig: Path | None = None, context: str | None = None) -> str | None:
    """Namespace of kubeconfig context ``context`` (default: the current one), else the pod's, else None."""
    try:
        contexts, active = kube_config.list_kube_config_contexts(
            config_file=str(kubeconfig) if kubeconfig else None
        )
    except (kube_config.ConfigException, FileNotFoundError):
        contexts, active = [], None
    chosen = active if context is None else next((c for c in contexts if c.get("name") == context), None)
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    if namespace:
        return str(namespace)
    if _SA_NAMESPACE_FILE.is_file():
        return _SA_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or None
    return None


def _api_error(err: ApiException, action: str, name: str, namespace: str) -> DeployError:
    what = f"{action} InferenceService {namespace}/{name}"
    if err.status in (401, 403):
        return DeployError(
            f"Kubernetes refused to {what} (HTTP {err.status})",
            fix="grant the pipeline service account edit rights on inferenceservices.serving.kserve.io",
        )
    if err.status == 404:
        return DeployError(
            f"cannot {what}: {GROUP}/{VERSION} {PLURAL} not found (HTTP 404)",
            fix="install KServe (OpenShift AI single-model serving) and check the namespace exists",
        )
    message = _status_message(err)
    return DeployError(f"cannot {what}: HTTP {err.status} {message}".rstrip())


def _status_message(err: ApiException) -> str:
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        return str(err.reason or "")
    return str(body.get("message") or err.reason or "") if isinstance(body, dict) else str(err.reason or "")


def _unreachable(err: Exception, action: str, name: str, namespace: str) -> DeployError:
    return DeployError(
        f"Kubernetes API unreachable while trying to {action} InferenceService {namespace}/{name} "
        f"({type(err).__name__})",
        fix="check the kubeconfig server address and network access to the API server",
    )


def _call(action: str, name: str, namespace: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ApiException as err:
        raise _api_error(err, action, name, namespace) from err
    except urllib3.exceptions.HTTPError as err:
        raise _unreachable(err, action, name, namespace) from err


def get_inference_service(api: CustomObjectsApi, name: str, namespace: str) -> dict[str, Any] | None:
    """The InferenceService object, or None when it does not exist.

    Raises:
        DeployError: The API server refused the request or is unreachable.
    """
    try:
        found = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise _api_error(err, "read", name, namespace) from err
    except urllib3.exceptions.HTTPError as err:
        raise _unreachable(err, "read", name, namespace) from err
    return cast(dict[str, Any], found)


def check_model_claim(client: ApiClient, namespace: str, claim: str) -> None:
    """The claim a ``pvc://`` model lives on exists and outlives the PipelineRun that filled it.

    Raises:
        ConfigError: No such claim, or a workspace volumeClaimTemplate (deleted with its run).
        DeployError: The API server refused the read or is unreachable.
    """
    try:
        pvc = CoreV1Api(client).read_namespaced_persistent_volume_claim(claim, namespace)
    except ApiException as err:
        if err.status == 404:
            raise ConfigError(
                f"--storage pvc: no PersistentVolumeClaim {namespace}/{claim}",
                fix="bind the model workspace to an existing claim (persistentVolumeClaim.claimName)",
            ) from err
        raise DeployError(
            f"cannot read claim {namespace}/{claim}: HTTP {err.status} {_status_message(err)}",
            fix="grant the pipeline service account get on persistentvolumeclaims",
        ) from err
    except urllib3.exceptions.HTTPError as err:
        raise DeployError(f"Kubernetes API unreachable reading claim {namespace}/{claim}") from err
    references = (pvc.metadata.owner_references if pvc.metadata else None) or []
    owners = [o.kind for o in references if o.kind in ("PipelineRun", "TaskRun")]
    if owners:
        raise ConfigError(
            f"--storage pvc: claim {claim} belongs to a {owners[0]} (a volumeClaimTemplate) and is deleted "
            "with it, taking the served model along",
            fix="bind the model workspace to a named persistentVolumeClaim that outlives the run",
        )


def apply_inference_service(api: CustomObjectsApi, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the InferenceService, or merge-patch it when it exists. Returns (object, created).

    Raises:
        DeployError: The API server refused the request or is unreachable.
    """
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    args = (GROUP, VERSION, namespace, PLURAL)
    existing = get_inference_service(api, name, namespace)
    if existing is None:
        created = _call(
            "create", name, namespace, lambda: api.create_namespaced_custom_object(*args, dict(body))
        )
        logger.info("created InferenceService %s/%s", namespace, name)
        return created, True
    patched = _call(
        "update",
        name,
        namespace,
        lambda: api.patch_namespaced_custom_object(
            *args, name, merge_patch_body(existing, body), _content_type="application/merge-patch+json"
        ),
    )
    logger.info(
        "updated InferenceService %s/%s (generation %s)",
        namespace,
        name,
        patched["metadata"].get("generation"),
    )
    return patched, False


def merge_patch_body(existing: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` as a merge patch that also removes the owned fields ``existing`` has and ``body`` lacks.

    A plain merge patch only adds: without the nulls, dropping --tolerations, --auth or a finished
    canary would leave the old value in place.
    """
    patch = copy.deepcopy(dict(body))
    for path in _OWNED_PATHS:
        if _lookup(existing, path) is not None and _lookup(body, path) is None:
            node = patch
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = None
    return patch


def _lookup(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def check_canary_base(existing: Mapping[str, Any] | None, spec: IsvcSpec) -> None:
    """A canary needs a Ready InferenceService of that name: the revision the rest of the traffic stays on.

    Raises:
        ConfigError: No InferenceService yet, or one that is not Ready (nothing to split with).
    """
    if spec.canary_percent is None or spec.canary_percent == 100:
        return
    where = f"InferenceService {spec.namespace}/{spec.name}"
    if existing is None:
        raise ConfigError(
            f"--canary-percent {spec.canary_percent}: {where} does not exist, so there is no previous "
            "revision to keep serving the rest",
            fix="deploy the first version without --canary-percent",
        )
    if not _is_ready(existing, None):
        raise ConfigError(
            f"--canary-percent {spec.canary_percent}: {where} is not Ready ({describe_conditions(existing)})",
            fix="fix or finish the current rollout first, then roll the canary",
        )


def traffic(isvc: Mapping[str, Any]) -> dict[str, int]:
    """Percent of traffic per predictor revision (``status.components.predictor.traffic``)."""
    predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
    return {
        str(t.get("revisionName")): int(t.get("percent") or 0)
        for t in predictor.get("traffic") or []
        if t.get("revisionName")
    }


def label_inference_service(
    api: CustomObjectsApi, name: str, namespace: str, labels: Mapping[str, str]
) -> None:
    """Merge ``labels`` into the InferenceService's labels.

    Raises:
        DeployError: The API server refused the request or is unreachable.
    """
    body = {"metadata": {"labels": dict(labels)}}
    _call(
        "label",
        name,
        namespace,
        lambda: api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body, _content_type="application/merge-patch+json"
        ),
    )


def describe_conditions(isvc: Mapping[str, Any]) -> str:
    """``Type=Status (Reason: message)`` for every status condition, plus the model's last failure."""
    status = isvc.get("status") or {}
    parts = []
    for condition in status.get("conditions") or []:
        text = f"{condition.get('type')}={condition.get('status')}"
        detail = ": ".join(str(x) for x in (condition.get("reason"), condition.get("message")) if x)
        parts.append(f"{text} ({detail})" if detail else text)
    failure = ((status.get("modelStatus") or {}).get("lastFailureInfo") or {}).get("message")
    if failure:
        parts.append(f"model failure: {failure}")
    return "; ".join(parts) or "no conditions reported yet"


def _is_ready(isvc: Mapping[str, Any], generation: int | None) -> bool:
    status = isvc.get("status") or {}
    observed = status.get("observedGeneration")
    # After a patch the old Ready condition still describes the previous generation until KServe catches up.
    if generation is not None and observed is not None and observed < generation:
        return False
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return ready and bool(status.get("url") or (status.get("address") or {}).get("url"))


def wait_until_ready(
    api: CustomObjectsApi,
    name: str,
    namespace: str,
    *,
    timeout: float,
    generation: int | None = None,
    poll_seconds: float = 5.0,
) -> dict[str, Any]:
    """Poll the InferenceService until its Ready condition is True and it has a URL.

    Raises:
        DeployError: Timeout or a terminal model failure; the message lists every condition.
    """
    deadline = time.monotonic() + timeout
    last_report = 0.0
    failures = 0
    while True:
        try:
            found = get_inference_service(api, name, namespace)
        except DeployError:
            # A long wait outlives API server restarts and network blips; a few in a row are tolerated.
            failures += 1
            if failures > _MAX_READ_FAILURES or time.monotonic() >= deadline:
                raise
            logger.warning("reading %s/%s failed (%d in a row); retrying", namespace, name, failures)
            time.sleep(min(poll_seconds, max(deadline - time.monotonic(), 0.01)))
            continue
        failures = 0
        if found is None:
            raise DeployError(f"InferenceService {namespace}/{name} was deleted while waiting for it")
        isvc = found
        if _is_ready(isvc, generation):
            return isvc
        transition = ((isvc.get("status") or {}).get("modelStatus") or {}).get("transitionStatus")
        if transition in _TERMINAL_TRANSITIONS:
            raise DeployError(
                f"InferenceService {namespace}/{name} failed ({transition}): {describe_conditions(isvc)}",
                fix="check the runtime image, the model URI and the data connection; then re-run",
            )
        now = time.monotonic()
        if now >= deadline:
            raise DeployError(
                f"InferenceService {namespace}/{name} not Ready after {timeout:.0f} s: "
                + describe_conditions(isvc),
                fix="inspect `oc describe inferenceservice` and the predictor pod logs, or raise --timeout",
            )
        if now - last_report >= 30:
            logger.info("waiting for %s/%s: %s", namespace, name, describe_conditions(isvc))
            last_report = now
        time.sleep(min(poll_seconds, max(deadline - now, 0.01)))


def endpoint_url(isvc: Mapping[str, Any], *, cluster_local: bool = False) -> str:
    """``status.url``, or the in-cluster ``status.address.url`` when ``cluster_local`` (if present)."""
    status = isvc.get("status") or {}
    internal = (status.get("address") or {}).get("url")
    if cluster_local and internal:
        return str(internal)
    return str(status.get("url") or internal)
