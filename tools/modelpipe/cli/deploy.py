"""`modelpipe deploy`: serve the model on KServe or as a local runtime process, and record the deployment."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from modelpipe.cli.common import (
    CommandOutput,
    add_data_connection_flag,
    add_registry_url_flag,
    add_step_parser,
    parse_bool,
    registry_settings,
    s3_settings,
    storage_key,
)
from modelpipe.cli.deploy_serving import add_serving_flags, served_model_uri, serving_options
from modelpipe.errors import ConfigError
from modelpipe.model_kinds import MODEL_KINDS, parse_model_kind

EXAMPLES = """\
  modelpipe deploy --target kserve --name tiny-sd --namespace models --model-uri s3://models/tiny-sd/abc123 \\
      --runtime-image quay.io/org/diffusers-runtime@sha256:... --data-connection models \\
      --registered-model-id 1 --model-version-id 2 --registry-url https://registry-rest.apps.example.com
  modelpipe deploy --target kserve --name tiny-sd --model-uri s3://models/tiny-sd/abc123 \\
      --deploy-mode Serverless --min-replicas 0 --max-replicas 4 --scale-metric concurrency \\
      --scale-target 2 --gpus 1 --node-selector nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB \\
      --tolerations '[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]' --expose true --auth true
  modelpipe deploy --target kserve --name tiny-sd --model-uri s3://models/tiny-sd/v2 \\
      --deploy-mode Serverless --canary-percent 10      # then --canary-percent 100 promotes v2
  modelpipe deploy --target local --name tiny-sd --model-uri s3://models/tiny-sd/abc123 \\
      --port 8080 --state-dir .local/runtime --results-dir out/
  modelpipe deploy --target kserve --model-kind text-generation --name qwen --model-uri s3://models/qwen/v1 \
      --tensor-parallel-size 2 --gpus 2 --max-model-len 8192 --storage-key my-data-connection
  modelpipe deploy --target local --model-kind text-generation --name tiny-llm \
      --model-uri s3://models/tiny-llm/v1 --port 8000 --state-dir .local/runtime
  modelpipe deploy --target local --stop --state-dir .local/runtime
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``deploy`` subcommand."""
    p = add_step_parser(
        subparsers,
        "deploy",
        help="deploy a KServe InferenceService (or a local runtime) and record it in the Model Registry",
        description="kserve: create or update an InferenceService using our ServingRuntime, the exact "
        "runtime image digest, the model's S3 URI and data connection; wait for Ready; label it with the "
        "registry ids and record it in the registry. local: start the runtime as a detached process loading "
        "the model from S3 (data connection from AWS_* env) and wait for ready. Results: ENDPOINT_URL, "
        "SERVED_MODEL_NAME, INFERENCE_SERVICE_ID (with a registry), RUNTIME_PID (local).",
        examples=EXAMPLES,
    )
    p.add_argument("--target", choices=("kserve", "local"), required=True)
    p.add_argument("--name", metavar="ISVC_NAME", help="InferenceService name, also the served model name")
    p.add_argument(
        "--model-uri", metavar="s3://BUCKET/PREFIX", help="the uploaded model (upload's MODEL_URI)"
    )
    p.add_argument("--registered-model-id", metavar="ID", help="register's REGISTERED_MODEL_ID")
    p.add_argument("--model-version-id", metavar="ID", help="register's MODEL_VERSION_ID")
    add_registry_url_flag(p)
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="wait for ready (kserve 1200, local 600)")
    p.add_argument(
        "--model-kind",
        default="",
        metavar="KIND",
        help=f"{' or '.join(MODEL_KINDS)} (default text-to-image): served by the diffusers runtime, "
        "or by vLLM with the OpenAI API at ENDPOINT_URL/v1/...",
    )
    v = p.add_argument_group("text-generation (vLLM; empty means vLLM's default)")
    v.add_argument("--tensor-parallel-size", default="", metavar="N", help="GPUs to shard one replica over")
    v.add_argument("--max-model-len", default="", metavar="TOKENS", help="context length to serve")
    v.add_argument("--dtype", default="", help="auto, bfloat16, float16, float32 (local default float32)")
    v.add_argument("--gpu-memory-utilization", default="", metavar="FRACTION", help="e.g. 0.9")
    k = p.add_argument_group("kserve target")
    k.add_argument("--namespace", help="default: the kubeconfig context's or the pod's namespace")
    k.add_argument(
        "--serving-runtime",
        default="",
        help="ServingRuntime name (default: diffusers-runtime, or vllm-runtime for text-generation)",
    )
    k.add_argument(
        "--runtime-image", metavar="REPO@sha256:...", help="exact runtime image (build's IMAGE_DIGEST)"
    )
    add_data_connection_flag(
        k, purpose="its name is the storage-config key (kserve); the local runtime reads the AWS_* env"
    )
    add_serving_flags(k)
    k.add_argument(
        "--registry-name", help="ModelRegistry instance name for the modelregistry.opendatahub.io/name label"
    )
    k.add_argument(
        "--cluster-local-url",
        type=parse_bool,
        default=False,
        metavar="true|false",
        help="true returns status.address.url (in-cluster), false status.url (default: false)",
    )
    k.add_argument("--kubeconfig", type=Path, help="default: KUBECONFIG, ~/.kube/config, else in-cluster")
    k.add_argument("--kube-context", help="kubeconfig context (default: current)")
    loc = p.add_argument_group("local target")
    loc.add_argument("--port", type=int, default=8080, help="HTTP port on 127.0.0.1 (default: %(default)s)")
    loc.add_argument("--state-dir", type=Path, metavar="DIR", help="pid file and runtime.log go here")
    loc.add_argument("--runtime-arg", action="append", default=[], metavar="ARG", help="extra runtime flag")
    loc.add_argument(
        "--stop", action="store_true", help="stop the model server recorded in --state-dir and exit"
    )
    p.set_defaults(handler=run)


def _check_flags(args: argparse.Namespace) -> None:
    if args.stop:
        if args.target != "local" or args.state_dir is None:
            raise ConfigError("--stop works with --target local --state-dir DIR", fix="add them")
        return
    for flag in ("name", "model_uri"):
        if not getattr(args, flag):
            raise ConfigError(f"--{flag.replace('_', '-')} is required", fix="see modelpipe deploy --help")


def run(args: argparse.Namespace) -> CommandOutput:
    """Check flags, deploy (or stop the local runtime), and map the result to Tekton results."""
    _check_flags(args)
    # Imported here: the kubernetes and model-registry clients take seconds to import.
    from modelpipe.steps.deploy import KServeOptions, LocalOptions, deploy_model
    from modelpipe.targets.local_served import stop_recorded
    from modelpipe.targets.vllm import parse_vllm_options

    if args.stop:
        stopped = stop_recorded(args.state_dir)
        return CommandOutput(summary={"stopped": "true" if stopped else "false (nothing running)"})
    model_kind = parse_model_kind(args.model_kind)
    vllm = parse_vllm_options(
        tensor_parallel_size=args.tensor_parallel_size,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        gpu_memory_utilization=args.gpu_memory_utilization,
    )
    options = serving_options(args)
    model_uri = served_model_uri(args)
    kserve = KServeOptions(
        namespace=args.namespace,
        serving_runtime=args.serving_runtime or None,
        runtime_image=args.runtime_image,
        # A pvc:// model needs no S3 credentials.
        storage_key=None if options["storage"] == "pvc" else storage_key(args),
        registry_name=args.registry_name,
        **options,
        kubeconfig=args.kubeconfig,
        kube_context=args.kube_context,
        cluster_local_url=args.cluster_local_url,
    )
    local = None
    if args.target == "local" and args.state_dir is not None:  # without one the step names the flag
        local = LocalOptions(
            state_dir=args.state_dir,
            s3=s3_settings(args),
            port=args.port,
            runtime_args=tuple(args.runtime_arg),
        )
    if args.timeout is not None:
        kserve = dataclasses.replace(kserve, timeout=args.timeout)
        local = dataclasses.replace(local, timeout=args.timeout) if local else None
    result = deploy_model(
        target=args.target,
        name=args.name,
        model_uri=model_uri,
        registered_model_id=args.registered_model_id,
        model_version_id=args.model_version_id,
        registry_settings=registry_settings(args),
        kserve=kserve,
        local=local,
        model_kind=model_kind,
        vllm=vllm,
    )
    results = {
        "ENDPOINT_URL": result.endpoint_url,
        "SERVED_MODEL_NAME": result.served_model_name,
        "INFERENCE_SERVICE_ID": result.inference_service_id or "",
    }
    if result.runtime_pid is not None:
        results["RUNTIME_PID"] = str(result.runtime_pid)
    summary = {"created": str(result.created).lower()}
    if result.isvc_uid:
        summary["isvc_uid"] = result.isvc_uid
    if result.traffic:
        summary["traffic"] = ", ".join(f"{rev}={pct}%" for rev, pct in result.traffic.items())
    if result.token_secret:
        summary["token_secret"] = result.token_secret
    return CommandOutput(results=results, summary=summary)
