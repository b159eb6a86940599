"""`modelpipe deploy` serving flags: scaling, size, GPU placement, exposure, auth, storage, canary.

Each flag is also a deploy-model Task param and a model-import pipeline param of the same name; Tekton
passes unset ones as "", which means the default here.
"""

from __future__ import annotations

import argparse
from typing import Any

from modelpipe.errors import ConfigError
from modelpipe.targets.kserve import Resources
from modelpipe.targets.serving_options import (
    DEPLOYMENT_MODES,
    SCALE_METRICS,
    STORAGE_KINDS,
    Placement,
    Scaling,
    parse_node_selector,
    parse_tolerations,
)

# The folder the model-import pipeline downloads into, inside the model workspace.
DEFAULT_MODEL_DIR = "model"


def _optional_int(text: str) -> int | None:
    """An integer flag where "" means unset (argparse reports anything else as a usage error)."""
    return None if text == "" else int(text)


def _true_false(text: str) -> bool | None:
    if text == "":
        return None
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


def _choice(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> str | None:
        if text == "":
            return None
        if text not in choices:
            raise ValueError(text)
        return text

    parse.__name__ = "one of " + ", ".join(choices)
    return parse


def add_serving_flags(k: argparse._ArgumentGroup) -> None:
    """The kserve target's serving choices (each also a Task and pipeline param of the same name)."""
    k.add_argument(
        "--deploy-mode",
        type=_choice(DEPLOYMENT_MODES),
        metavar="|".join(DEPLOYMENT_MODES),
        help="KServe deployment mode (default: RawDeployment; Serverless for scale to zero and canaries)",
    )
    k.add_argument("--min-replicas", type=_optional_int, metavar="N", help="default 1; 0 scales to zero")
    k.add_argument(
        "--max-replicas", type=_optional_int, metavar="N", help="default: --min-replicas (at least 1)"
    )
    k.add_argument(
        "--scale-metric",
        type=_choice(SCALE_METRICS),
        metavar="|".join(SCALE_METRICS),
        help="autoscaling metric (RawDeployment: cpu or memory; default: KServe's)",
    )
    k.add_argument("--scale-target", type=_optional_int, metavar="N", help="per-replica target of the metric")
    k.add_argument(
        "--gpus", type=_optional_int, metavar="N", help="GPU limit per replica (0 for CPU; default 1)"
    )
    k.add_argument("--gpu-resource", metavar="RESOURCE", help="GPU resource name (default: nvidia.com/gpu)")
    k.add_argument("--cpu", help="CPU request and limit (default: 4)")
    k.add_argument("--memory", help="memory request and limit (default: 16Gi)")
    k.add_argument(
        "--node-selector",
        metavar="LABEL=VALUE,...",
        help="node labels the predictor needs, e.g. nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB",
    )
    k.add_argument(
        "--tolerations",
        metavar="YAML",
        help="YAML list of tolerations, e.g. '[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]'",
    )
    k.add_argument("--service-account", help="predictor service account (default: the namespace's default)")
    k.add_argument(
        "--expose",
        type=_true_false,
        metavar="true|false",
        help="external route/ingress, recorded as the endpoint (default: false, in-cluster only)",
    )
    k.add_argument(
        "--auth",
        type=_true_false,
        metavar="true|false",
        help="require a bearer token; creates ServiceAccount NAME-sa and its token Secret NAME-sa-token",
    )
    k.add_argument(
        "--storage",
        type=_choice(STORAGE_KINDS),
        metavar="|".join(STORAGE_KINDS),
        help="s3: the data connection (default); pvc: pvc://CLAIM/DIR, filled by the pipeline",
    )
    k.add_argument(
        "--model-claim",
        metavar="CLAIM",
        help="--storage pvc: the PersistentVolumeClaim holding the model (the model workspace's claim)",
    )
    k.add_argument(
        "--model-dir",
        metavar="DIR",
        help=f"--storage pvc: the model folder in the claim (default: {DEFAULT_MODEL_DIR})",
    )
    k.add_argument(
        "--canary-percent",
        type=_optional_int,
        metavar="1-100",
        help="Serverless: this share goes to the new revision, the rest to the current; 100 promotes",
    )


def served_model_uri(args: argparse.Namespace) -> str:
    """``--model-uri``, or with ``--storage pvc`` the ``pvc://CLAIM/DIR`` the pipeline filled.

    Raises:
        ConfigError: ``--storage pvc`` with neither a pvc:// URI nor a claim and folder.
    """
    if args.storage != "pvc" or (args.model_uri or "").startswith("pvc://"):
        return str(args.model_uri)
    if not args.model_claim:
        raise ConfigError(
            "--storage pvc needs --model-uri pvc://CLAIM/PATH, or --model-claim (with --model-dir)",
            fix="bind the pipeline's model workspace to a persistentVolumeClaim (claimName)",
        )
    folder = (args.model_dir or DEFAULT_MODEL_DIR).strip("/")
    if not folder or ".." in folder.split("/"):
        raise ConfigError(
            f"--model-dir {args.model_dir!r} is not a folder inside the claim", fix="pass e.g. model"
        )
    return f"pvc://{args.model_claim}/{folder}"


def serving_options(args: argparse.Namespace) -> dict[str, Any]:
    """KServeOptions fields from the serving flags (unset ones keep their defaults).

    Raises:
        ConfigError: A node selector or tolerations text that does not parse.
    """
    defaults = Resources()
    min_replicas = 1 if args.min_replicas is None else args.min_replicas
    return {
        "deployment_mode": args.deploy_mode or "RawDeployment",
        "resources": Resources(
            cpu=args.cpu or defaults.cpu,
            memory=args.memory or defaults.memory,
            gpus=defaults.gpus if args.gpus is None else args.gpus,
            gpu_resource=args.gpu_resource or defaults.gpu_resource,
        ),
        "scaling": Scaling(
            min_replicas=min_replicas,
            max_replicas=args.max_replicas,
            metric=args.scale_metric,
            target=args.scale_target,
        ),
        "placement": Placement(
            node_selector=parse_node_selector(args.node_selector or ""),
            tolerations=parse_tolerations(args.tolerations or ""),
        ),
        "service_account": args.service_account or None,
        "expose": bool(args.expose),
        "auth": bool(args.auth),
        "storage": args.storage or "s3",
        "canary_percent": args.canary_percent,
    }
