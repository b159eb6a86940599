"""`modelpipe upload`: put a downloaded model folder into S3 (parallel, resumable, manifest last)."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelpipe.cli.common import CommandOutput, add_data_connection_flag, add_step_parser, s3_settings
from modelpipe.errors import ConfigError
from modelpipe.s3 import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MULTIPART_CHUNKSIZE,
    MIB,
    make_s3_client,
    parse_s3_uri,
)
from modelpipe.steps.upload import upload_model
from modelpipe.uploads import FAST_LINK_RTT_SECONDS, FAST_LINK_SINGLE_REQUEST_MAX, MIN_PART_SIZE, UploadConfig

_MIN_PART_MIB = MIN_PART_SIZE // MIB
EXAMPLES = """\
  export AWS_S3_ENDPOINT=http://minio.minio.svc:9000 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
  modelpipe upload --model-dir /workspace/model --model-uri s3://models/tiny-sd/abc123 \\
      --data-connection models
  modelpipe upload --model-dir ./model --model-uri s3://models/sd-turbo --results-dir /tekton/results
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `modelpipe upload`."""
    parser = add_step_parser(
        subparsers,
        "upload",
        help="upload a model folder to S3",
        description=(
            "Check every file against manifest.json, skip objects already in S3 with the same size and "
            "sha256, upload the rest (one verified request per file on a fast link, parallel resumable "
            "multipart on a slow one), check them, then upload manifest.json last. "
            "Connection from AWS_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION. "
            "Results: MODEL_URI, BYTES_SENT, BYTES_SKIPPED."
        ),
        examples=EXAMPLES,
    )
    parser.add_argument(
        "--model-dir", type=Path, required=True, metavar="DIR", help="model folder with manifest.json"
    )
    parser.add_argument(
        "--model-uri", required=True, metavar="s3://BUCKET/PREFIX", help="where the model goes"
    )
    add_data_connection_flag(parser, purpose="named when its credentials are missing")
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=DEFAULT_MAX_CONCURRENCY,
        metavar="N",
        help=(
            "most parallel transfers; fewer while more do not add throughput "
            f"(default {DEFAULT_MAX_CONCURRENCY})"
        ),
    )
    parser.add_argument(
        "--chunk-size-mb",
        type=int,
        default=DEFAULT_MULTIPART_CHUNKSIZE // MIB,
        metavar="MB",
        help=f"multipart part size in MiB (default {DEFAULT_MULTIPART_CHUNKSIZE // MIB})",
    )
    parser.add_argument(
        "--single-request-max-mb",
        type=int,
        default=None,
        metavar="MB",
        help=(
            "files up to this size go in one request, larger ones as multipart; default: chosen from the "
            f"link ({FAST_LINK_SINGLE_REQUEST_MAX // MIB} MiB when its round trip is at most "
            f"{FAST_LINK_RTT_SECONDS * 1000:g} ms, else the part size)"
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput:
    """Check flags, connect, upload, and report MODEL_URI / BYTES_SENT / BYTES_SKIPPED."""
    if not args.model_dir.is_dir():
        raise ConfigError(
            f"--model-dir {args.model_dir} is not a folder", fix="pass the folder `modelpipe download` wrote"
        )
    if args.max_concurrency < 1:
        raise ConfigError(f"--max-concurrency {args.max_concurrency} is below 1", fix="pass 1 or more")
    if args.chunk_size_mb < _MIN_PART_MIB:
        raise ConfigError(
            f"--chunk-size-mb {args.chunk_size_mb} is below the S3 minimum part size",
            fix=f"pass {_MIN_PART_MIB} or more",
        )
    if args.single_request_max_mb is not None and args.single_request_max_mb < 1:
        raise ConfigError(
            f"--single-request-max-mb {args.single_request_max_mb} is below 1", fix="pass 1 or more"
        )
    dest = parse_s3_uri(args.model_uri)
    # Transfers plus the parallel HEADs of the survey share the connection pool.
    client = make_s3_client(s3_settings(args), max_pool_connections=args.max_concurrency + 12)
    single = args.single_request_max_mb
    result = upload_model(
        src=args.model_dir,
        dest=dest,
        client=client,
        config=UploadConfig(
            max_concurrency=args.max_concurrency,
            part_size=args.chunk_size_mb * MIB,
            single_request_max=single * MIB if single is not None else None,
        ),
    )
    return CommandOutput(
        results={
            "MODEL_URI": result.model_uri,
            "BYTES_SENT": str(result.bytes_sent),
            "BYTES_SKIPPED": str(result.bytes_skipped),
        },
        summary={
            "files_sent": str(result.files_sent),
            "files_skipped": str(result.files_skipped),
            "seconds": f"{result.seconds:.2f}",
        },
    )
