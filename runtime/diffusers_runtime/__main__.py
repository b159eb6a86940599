"""Entry point: kserve's flags plus ours, parsed strictly; wire the model and start the server."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import kserve
from kserve import model_server
from kserve.logging import KSERVE_TRACE_LOGGER_NAME

from .engine import BatchingOptions, PipelineOptions
from .errors import ModelLoadError
from .families import ServingDefaults
from .logs import flush_logs, log_like_kserve, quiet_client_errors, write_logs_in_background
from .model import DiffusersModel, RuntimeDataPlane, register_routes
from .schema import MIN_SIDE, Limits
from .storage import check_model_dir, download_model, is_remote, local_path

logger = logging.getLogger("diffusers_runtime")

EXAMPLES = """examples:
  python -m diffusers_runtime --model_name sd15 --model_dir /mnt/models
  STORAGE_URI=s3://models/sd15 AWS_S3_ENDPOINT=http://minio:9000 python -m diffusers_runtime --model_name sd15
  python -m diffusers_runtime --model_dir ./tiny --device cpu --http_port 8080 --enable_grpc false \\
      --max_batch_size 8 --max_batch_delay_ms 20 --max_queue 64
"""


DEFAULT_REQUEST_PIXEL_STEPS = 4 * 1024 * 1024 * 50
DEFAULT_SERVER_PIXEL_STEPS = 4 * DEFAULT_REQUEST_PIXEL_STEPS


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _optional_int(value: str) -> int | None:
    if not value.strip():
        return None
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or '', got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _optional_float(value: str) -> float | None:
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or '', got {value!r}") from None
    if not 0.0 <= number <= 30.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 30, got {value}")
    return number


def _optional_size(value: str) -> tuple[int, int] | None:
    if not value.strip():
        return None
    match = re.fullmatch(r"(\d{2,5})x(\d{2,5})", value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 512x512 or '', got {value!r}")
    return int(match.group(1)), int(match.group(2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m diffusers_runtime",
        description="KServe model server for diffusers text-to-image pipelines (V1, V2, OpenAI images).",
        parents=[model_server.parser],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
        allow_abbrev=False,
    )
    group = parser.add_argument_group("diffusers runtime")
    group.add_argument(
        "--model_dir",
        default=os.environ.get("STORAGE_URI"),
        help="pipeline folder, file:// path or s3:// URI (default: env STORAGE_URI)",
    )
    group.add_argument(
        "--download_dir", default=None, help="where remote models are downloaded (default: a temp dir)"
    )
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    group.add_argument(
        "--dtype",
        choices=("auto", "float16", "bfloat16", "float32"),
        default="auto",
        help="default auto: float16 on cuda, float32 on cpu",
    )
    group.add_argument("--compile", action="store_true", help="torch.compile the denoiser (GPU)")
    group.add_argument(
        "--cpu_offload", choices=("none", "model", "sequential"), default="none", help="default: none"
    )
    group.add_argument("--max_batch_size", type=int, default=4, help="images per pipeline call (default: 4)")
    group.add_argument(
        "--max_batch_delay_ms", type=float, default=10.0, help="max wait for a batch to fill (default: 10)"
    )
    group.add_argument("--max_queue", type=int, default=64, help="images waiting before 429 (default: 64)")
    group.add_argument(
        "--batch_invariant",
        type=_bool,
        default=True,
        help="pad every call to --max_batch_size so an image is byte-identical alone or batched "
        "(default: true)",
    )
    group.add_argument(
        "--variant",
        default=None,
        help="weight variant to load, e.g. fp16 (default: the one manifest.json records; '' for the default "
        "weights)",
    )
    group.add_argument(
        "--default_steps",
        type=_optional_int,
        default=None,
        help="num_inference_steps of requests without it (default: the model's own; '' too)",
    )
    group.add_argument(
        "--default_guidance",
        type=_optional_float,
        default=None,
        help="guidance_scale of requests without it (default: the model's own; '' too)",
    )
    group.add_argument(
        "--default_size",
        type=_optional_size,
        default=None,
        metavar="WIDTHxHEIGHT",
        help="size of requests without one, e.g. 512x512 (default: the model's own; '' too)",
    )
    group.add_argument("--max_steps", type=int, default=100, help="max num_inference_steps (default: 100)")
    group.add_argument(
        "--max_pixels", type=int, default=1024 * 1024, help="max width*height (default: 1048576)"
    )
    group.add_argument(
        "--max_images_per_request", type=int, default=4, help="max images per request (default: 4)"
    )
    group.add_argument(
        "--max_request_pixel_steps",
        type=int,
        default=DEFAULT_REQUEST_PIXEL_STEPS,
        help="max width*height*steps summed over a request's images; more is a 400 "
        f"(default: {DEFAULT_REQUEST_PIXEL_STEPS}, four 1024x1024 images at 50 steps)",
    )
    group.add_argument(
        "--max_server_pixel_steps",
        type=int,
        default=DEFAULT_SERVER_PIXEL_STEPS,
        help="max width*height*steps of all images queued or running; a request beyond it gets 429 "
        f"with Retry-After (default: {DEFAULT_SERVER_PIXEL_STEPS})",
    )
    group.add_argument(
        "--request_timeout_s",
        type=float,
        default=0.0,
        help="deadline of every request in seconds, 0 for none; a Request-Timeout header may shorten it. "
        "Past it the answer is 503 and the request's images are dropped (default: 0)",
    )
    group.add_argument(
        "--enable_repository_routes",
        type=_bool,
        default=False,
        help="serve kserve's /v2/repository load/unload routes, which let any client unload the model "
        "(default: false, 404)",
    )
    group.add_argument(
        "--enable_explain_route",
        type=_bool,
        default=False,
        help="serve kserve's :explain route (not implemented by this model: 501) (default: false, 404)",
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.model_dir:
        parser.error("--model_dir or env STORAGE_URI is required")
    if args.workers != 1:
        parser.error("--workers must be 1: every worker would load its own copy of the pipeline")
    for flag in ("max_batch_size", "max_queue", "max_steps", "max_images_per_request"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1")
    if args.max_batch_delay_ms < 0:
        parser.error("--max_batch_delay_ms must be >= 0")
    if args.max_pixels < MIN_SIDE * MIN_SIDE:
        parser.error(f"--max_pixels must be >= {MIN_SIDE * MIN_SIDE}")
    if args.max_queue < args.max_images_per_request:
        parser.error("--max_queue must be >= --max_images_per_request")
    if args.max_request_pixel_steps < MIN_SIDE * MIN_SIDE:
        parser.error(
            f"--max_request_pixel_steps must be >= {MIN_SIDE * MIN_SIDE} (one {MIN_SIDE}x{MIN_SIDE} step)"
        )
    if args.max_server_pixel_steps < args.max_request_pixel_steps:
        parser.error("--max_server_pixel_steps must be >= --max_request_pixel_steps")
    if not 0 <= args.request_timeout_s < float("inf"):
        parser.error("--request_timeout_s must be >= 0 (0: no deadline)")
    return args


def _resolve_model_dir(args: argparse.Namespace) -> tuple[Path, float]:
    source = args.model_dir
    if not is_remote(source):
        return check_model_dir(local_path(source), source), 0.0
    dest = Path(args.download_dir or tempfile.mkdtemp(prefix="diffusers-model-"))
    started = time.monotonic()
    # Before the server starts: kserve_storage forks download workers, which is unsafe once threads run.
    model_dir = download_model(source, dest)
    return model_dir, time.monotonic() - started


def _load_or_exit(model: DiffusersModel) -> None:
    try:
        model.load()
    except ModelLoadError as err:
        print(f"diffusers_runtime: error: {err}", file=sys.stderr, flush=True)
        flush_logs()
        os._exit(1)
    except BaseException:
        logger.exception("loading the model failed")
        flush_logs()
        os._exit(1)


def configure_latency_logging(enabled: bool) -> None:
    """Make ``--enable_latency_logging false`` silence every per-request latency line.

    kserve's flag only covers the model's own line; its timing middleware logs two more per request
    whatever the flag says (Prometheus histograms carry the same numbers). Enabled leaves the level that
    kserve's logging config (KSERVE_LOGLEVEL) set.
    """
    trace = logging.getLogger(KSERVE_TRACE_LOGGER_NAME)
    if not enabled:
        trace.setLevel(max(logging.WARNING, trace.getEffectiveLevel()))


def build_model_server(args: argparse.Namespace, logger_name: str) -> kserve.ModelServer:
    """kserve's ModelServer from the parsed flags (one worker), with this runtime's logging set up.

    Also what benchmarks/runtime_trivial_model.py serves through, so the trivial model it compares against
    differs from the runtime only in the model.
    """
    server = kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=1,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    configure_latency_logging(args.enable_latency_logging)
    log_like_kserve(logger_name)
    quiet_client_errors()
    write_logs_in_background()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model_dir, download_seconds = _resolve_model_dir(args)
    except ModelLoadError as err:
        print(f"diffusers_runtime: error: {err}", file=sys.stderr)
        return 1
    model = DiffusersModel(
        args.model_name,
        model_dir=model_dir,
        pipeline_options=PipelineOptions(
            device=args.device,
            dtype=args.dtype,
            compile=args.compile,
            cpu_offload=args.cpu_offload,
            variant=args.variant,
            serving_defaults=ServingDefaults(
                steps=args.default_steps,
                guidance_scale=args.default_guidance,
                width=args.default_size[0] if args.default_size else None,
                height=args.default_size[1] if args.default_size else None,
            ),
        ),
        batching=BatchingOptions(
            max_batch_size=args.max_batch_size,
            max_batch_delay_s=args.max_batch_delay_ms / 1000.0,
            max_queue=args.max_queue,
            batch_invariant=args.batch_invariant,
            max_pending_pixel_steps=args.max_server_pixel_steps,
        ),
        limits=Limits(
            max_steps=args.max_steps,
            max_pixels=args.max_pixels,
            max_images_per_request=args.max_images_per_request,
            max_request_pixel_steps=args.max_request_pixel_steps,
        ),
        download_seconds=download_seconds,
    )
    server = build_model_server(args, logger.name)
    server.dataplane = RuntimeDataPlane(model_registry=server.registered_models)
    # Register before loading so health, metrics and readiness (false) answer while the pipeline loads.
    server.register_model(model)
    register_routes(
        model_server.app,
        model,
        enable_repository_routes=args.enable_repository_routes,
        enable_explain_route=args.enable_explain_route,
        request_timeout_s=args.request_timeout_s or None,
    )
    threading.Thread(target=_load_or_exit, args=(model,), name="model-load", daemon=True).start()
    server.start([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
