"""Serving choices of an InferenceService (scaling, placement, exposure, storage, canary) and their rules.

Each choice is parsed from its flag text here and checked against the others before anything is applied,
so a combination KServe would reject or silently ignore (scale-to-zero in RawDeployment, a canary with no
revision to split with, a toleration that is not YAML) fails naming the flag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from modelpipe.errors import ConfigError

DEPLOYMENT_MODES: tuple[str, ...] = ("RawDeployment", "Serverless")
# KServe's predictor.scaleMetric enum; RawDeployment scales with an HPA, which knows only cpu and memory.
SCALE_METRICS: tuple[str, ...] = ("cpu", "memory", "concurrency", "rps")
RAW_SCALE_METRICS: tuple[str, ...] = ("cpu", "memory")
STORAGE_KINDS: tuple[str, ...] = ("s3", "pvc")
_TOLERATION_FIELDS = {"key", "operator", "value", "effect", "tolerationSeconds"}
_TOLERATION_OPERATORS = ("Exists", "Equal")
_TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Kubernetes label syntax: optional DNS-subdomain prefix, then a name of at most 63 characters.
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Scaling:
    """Replica bounds and the autoscaler's metric and per-replica target.

    Attributes:
        min_replicas: Replicas kept running; 0 (scale to zero) needs Serverless.
        max_replicas: Upper bound; None means ``max(min_replicas, 1)`` (no autoscaling).
        metric: ``cpu``, ``memory``, ``concurrency`` or ``rps``; None leaves KServe's default.
        target: Per-replica target of ``metric`` (utilisation percent for cpu).
    """

    min_replicas: int = 1
    max_replicas: int | None = None
    metric: str | None = None
    target: int | None = None

    @property
    def upper(self) -> int:
        return self.max_replicas if self.max_replicas is not None else max(self.min_replicas, 1)


@dataclass(frozen=True)
class Placement:
    """Where predictor pods may run: a node selector and tolerations for tainted (GPU) nodes."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _label_value_ok(value: str) -> bool:
    return value == "" or (len(value) <= 63 and bool(_LABEL_NAME.match(value)))


def parse_node_selector(text: str) -> dict[str, str]:
    """``KEY=VALUE,KEY=VALUE`` (e.g. ``nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB``) as a mapping.

    Raises:
        ConfigError: A pair without ``=``, a key given twice, or a key/value that is not a valid label.
    """
    selector: dict[str, str] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _label_key_ok(key) or not _label_value_ok(value):
            raise ConfigError(
                f"--node-selector {pair!r} is not LABEL=VALUE with a valid Kubernetes label",
                fix="pass e.g. nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB (comma-separate several)",
            )
        if key in selector:
            raise ConfigError(f"--node-selector names {key} twice", fix="give each label once")
        selector[key] = value
    return selector


def parse_tolerations(text: str) -> tuple[dict[str, Any], ...]:
    """A YAML (or JSON) list of Kubernetes tolerations, checked field by field.

    Raises:
        ConfigError: Not YAML, not a list of mappings, an unknown field, or values Kubernetes refuses.
    """
    if not text.strip():
        return ()
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(
            f"--tolerations is not valid YAML ({str(err).splitlines()[0]})",
            fix="pass a list, e.g. [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]",
        ) from err
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(isinstance(t, dict) for t in parsed):
        raise ConfigError(
            "--tolerations must be a YAML list of tolerations",
            fix="pass e.g. [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]",
        )
    return tuple(_checked_toleration(t, i) for i, t in enumerate(parsed))


def _checked_toleration(toleration: dict[str, Any], index: int) -> dict[str, Any]:
    where = f"--tolerations item {index}"
    unknown = sorted(set(toleration) - _TOLERATION_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}", fix=f"use {sorted(_TOLERATION_FIELDS)}")
    if any(not isinstance(toleration.get(k, ""), str) for k in ("key", "operator", "value", "effect")):
        raise ConfigError(f"{where}: key, operator, value and effect must be strings", fix="quote them")
    operator = toleration.get("operator", "Equal")
    if operator not in _TOLERATION_OPERATORS:
        raise ConfigError(f"{where}: operator {operator!r} unknown", fix=f"use {_TOLERATION_OPERATORS}")
    if operator == "Exists" and toleration.get("value"):
        raise ConfigError(f"{where}: operator Exists takes no value", fix="drop value or use Equal")
    if not toleration.get("key") and operator != "Exists":
        raise ConfigError(f"{where}: an empty key needs operator Exists", fix="add key or operator: Exists")
    if toleration.get("key") and not _label_key_ok(toleration["key"]):
        raise ConfigError(f"{where}: key {toleration['key']!r} is not a valid taint key", fix="fix the key")
    effect = toleration.get("effect", "")
    if effect and effect not in _TOLERATION_EFFECTS:
        raise ConfigError(f"{where}: effect {effect!r} unknown", fix=f"use {_TOLERATION_EFFECTS}")
    if "tolerationSeconds" in toleration:
        seconds = toleration["tolerationSeconds"]
        if effect != "NoExecute" or not isinstance(seconds, int) or isinstance(seconds, bool):
            raise ConfigError(
                f"{where}: tolerationSeconds must be an integer and goes with effect NoExecute",
                fix="drop it or set effect: NoExecute",
            )
    return dict(toleration)


def check_scaling(scaling: Scaling, deployment_mode: str) -> None:
    """Refuse bounds and metrics the chosen deployment mode cannot honour.

    Raises:
        ConfigError: Naming the flag and the fix.
    """
    if scaling.min_replicas < 0:
        raise ConfigError(f"--min-replicas {scaling.min_replicas} must be 0 or more", fix="pass 0 or more")
    if scaling.min_replicas == 0 and deployment_mode == "RawDeployment":
        raise ConfigError(
            "--min-replicas 0 (scale to zero) needs --deploy-mode Serverless; a RawDeployment keeps a pod",
            fix="pass --deploy-mode Serverless or --min-replicas 1",
        )
    if scaling.max_replicas is not None and (
        scaling.max_replicas < 1 or scaling.max_replicas < scaling.min_replicas
    ):
        raise ConfigError(
            f"--max-replicas {scaling.max_replicas} must be at least 1 and at least --min-replicas "
            f"{scaling.min_replicas}",
            fix="raise --max-replicas",
        )
    if scaling.metric is not None and scaling.metric not in SCALE_METRICS:
        raise ConfigError(f"--scale-metric {scaling.metric!r} unknown", fix=f"use one of {SCALE_METRICS}")
    if deployment_mode == "RawDeployment" and scaling.metric not in (None, *RAW_SCALE_METRICS):
        raise ConfigError(
            f"--scale-metric {scaling.metric} needs --deploy-mode Serverless (Knative); a RawDeployment "
            "scales with an HPA on cpu or memory",
            fix="pass --deploy-mode Serverless or --scale-metric cpu",
        )
    if scaling.target is not None:
        if scaling.target <= 0:
            raise ConfigError(f"--scale-target {scaling.target} must be positive", fix="pass e.g. 80")
        if scaling.metric in (None, "cpu") and deployment_mode == "RawDeployment" and scaling.target > 100:
            raise ConfigError(
                f"--scale-target {scaling.target}: CPU utilisation is a percent of the request, which is "
                "also the limit here, so it never exceeds 100",
                fix="pass 1-100",
            )


def check_canary(canary_percent: int | None, deployment_mode: str) -> None:
    """Refuse a traffic split KServe cannot make (the existing revision is checked when applying).

    Raises:
        ConfigError: Out of range, or RawDeployment (no revisions to split between).
    """
    if canary_percent is None:
        return
    if not 1 <= canary_percent <= 100:
        raise ConfigError(
            f"--canary-percent {canary_percent} must be 1-100 (100 promotes the canary)", fix="pass 1-100"
        )
    if deployment_mode != "Serverless":
        raise ConfigError(
            "--canary-percent needs --deploy-mode Serverless: KServe splits traffic between Knative "
            "revisions, which a RawDeployment does not have",
            fix="pass --deploy-mode Serverless, or deploy without --canary-percent",
        )


def check_storage(storage: str, model_uri: str) -> None:
    """The model URI's scheme matches ``storage`` (``s3://`` data connection or ``pvc://CLAIM/PATH``).

    Raises:
        ConfigError: Unknown storage kind or a URI of the other kind.
    """
    if storage not in STORAGE_KINDS:
        raise ConfigError(f"--storage {storage!r} unknown", fix=f"use one of {STORAGE_KINDS}")
    scheme = f"{storage}://"
    rest = model_uri[len(scheme) :] if model_uri.startswith(scheme) else ""
    if not rest or (storage == "pvc" and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/.+", rest)):
        example = (
            "pvc://CLAIM/PATH (the PVC the pipeline filled)" if storage == "pvc" else "the upload MODEL_URI"
        )
        article = "an" if storage == "s3" else "a"
        raise ConfigError(
            f"--model-uri {model_uri!r} is not {article} {scheme} URI (--storage {storage})",
            fix=f"pass {example}",
        )


def pvc_model_uri(claim: str, mount: str, model_dir: str) -> str:
    """``pvc://CLAIM/PATH`` of ``model_dir``, a folder inside the workspace ``mount`` backed by ``claim``.

    Raises:
        ConfigError: No claim (the workspace is not a PersistentVolumeClaim) or a folder outside it.
    """
    if not claim:
        raise ConfigError(
            "--storage pvc needs the model workspace bound to a PersistentVolumeClaim",
            fix="bind workspace model to a persistentVolumeClaim (claimName) that outlives the run",
        )
    root = mount.rstrip("/")
    if not model_dir.startswith(root + "/") or ".." in model_dir.split("/"):
        raise ConfigError(
            f"--model-dir {model_dir!r} is not inside the model workspace {mount!r}",
            fix="pass the download step's MODEL_DIR",
        )
    return f"pvc://{claim}/{model_dir[len(root) + 1 :].strip('/')}"
