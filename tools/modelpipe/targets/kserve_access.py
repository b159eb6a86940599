"""Token access to an authenticated InferenceService, made the way the OpenShift AI dashboard makes it.

With ``security.opendatahub.io/enable-auth: "true"`` the endpoint accepts a bearer token of any identity
allowed to ``get`` that InferenceService. Deploy creates that identity: a ServiceAccount ``NAME-sa``, a
Role ``NAME-view-role`` granting ``get`` on this one InferenceService, a RoleBinding ``NAME-view`` and a
long-lived token Secret ``NAME-sa-token`` (read it with ``kubectl get secret NAME-sa-token -o
jsonpath='{.data.token}' | base64 -d``, or mint a short-lived one with ``kubectl create token NAME-sa``).
Every object is owned by the InferenceService, so deleting it removes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
from kubernetes.client import ApiClient, CoreV1Api, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from modelpipe.errors import DeployError

logger = logging.getLogger(__name__)

_DASHBOARD_LABELS = {"opendatahub.io/dashboard": "true", "app.kubernetes.io/part-of": "modelpipe"}
_MERGE = "application/merge-patch+json"


def service_account_name(isvc_name: str) -> str:
    """The ServiceAccount whose token opens ``isvc_name``."""
    return f"{isvc_name}-sa"


def token_secret_name(isvc_name: str) -> str:
    """The Secret holding that ServiceAccount's long-lived token."""
    return f"{service_account_name(isvc_name)}-token"


def build_access_objects(isvc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding and token Secret for the (created) InferenceService ``isvc``."""
    name, namespace = isvc["metadata"]["name"], isvc["metadata"]["namespace"]
    account = service_account_name(name)
    metadata = {
        "namespace": namespace,
        "labels": dict(_DASHBOARD_LABELS),
        "ownerReferences": [
            {
                "apiVersion": isvc["apiVersion"],
                "kind": isvc["kind"],
                "name": name,
                "uid": isvc["metadata"]["uid"],
            }
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, **metadata}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": f"{name}-view-role", **metadata},
            "rules": [
                {
                    "apiGroups": ["serving.kserve.io"],
                    "resources": ["inferenceservices"],
                    "resourceNames": [name],
                    "verbs": ["get"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{name}-view", **metadata},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-view-role"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": token_secret_name(name),
                **metadata,
                "annotations": {"kubernetes.io/service-account.name": account},
            },
        },
    ]


def apply_access_objects(client: ApiClient, objects: list[dict[str, Any]]) -> None:
    """Create each object, or merge-patch it when it exists (re-deploys converge).

    Raises:
        DeployError: The API server refused (e.g. no RBAC to create Roles) or is unreachable.
    """
    core, rbac = CoreV1Api(client), RbacAuthorizationV1Api(client)
    calls: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "ServiceAccount": (core.create_namespaced_service_account, core.patch_namespaced_service_account),
        "Secret": (core.create_namespaced_secret, core.patch_namespaced_secret),
        "Role": (rbac.create_namespaced_role, rbac.patch_namespaced_role),
        "RoleBinding": (rbac.create_namespaced_role_binding, rbac.patch_namespaced_role_binding),
    }
    for obj in objects:
        create, patch = calls[obj["kind"]]
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        what = f"{obj['kind']} {namespace}/{name}"
        try:
            try:
                create(namespace, obj)
                logger.info("created %s", what)
            except ApiException as err:
                if err.status != 409:
                    raise
                patch(name, namespace, obj, _content_type=_MERGE)
                logger.info("updated %s", what)
        except ApiException as err:
            raise DeployError(
                f"Kubernetes refused to create {what} for token authentication (HTTP {err.status})",
                fix="grant the pipeline service account create/patch on serviceaccounts, secrets, roles "
                "and rolebindings (gitops/base/rbac.yaml), or deploy without --auth",
            ) from err
        except urllib3.exceptions.HTTPError as err:
            raise DeployError(
                f"Kubernetes API unreachable while creating {what} ({type(err).__name__})",
                fix="check network access to the API server",
            ) from err
