"""`modelpipe local s3`: run the embedded SeaweedFS S3 in the foreground until SIGTERM or Ctrl+C."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from types import FrameType

from modelpipe.cli.common import CommandOutput, add_step_parser
from modelpipe.config import AWS_S3_BUCKET, S3Settings
from modelpipe.errors import ConfigError, LocalRunError

log = logging.getLogger(__name__)


def add_s3_parser(local_subparsers: argparse._SubParsersAction) -> None:
    """Register `local s3` under the `local` group."""
    parser = add_step_parser(
        local_subparsers,
        "s3",
        help="run an embedded S3 server (SeaweedFS) on 127.0.0.1",
        description="Serve S3 on 127.0.0.1 with SeaweedFS, enforcing AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, "
        "creating the bucket named by AWS_S3_BUCKET. Data stays in --dir across restarts. Stops on SIGTERM.",
        examples="  AWS_ACCESS_KEY_ID=minio AWS_SECRET_ACCESS_KEY=minio123 AWS_S3_BUCKET=models \\\n"
        "    modelpipe local s3 --dir .local/s3 --port 8333",
    )
    parser.add_argument("--dir", type=Path, required=True, help="data folder (kept across restarts)")
    parser.add_argument("--port", type=int, default=8333, help="S3 port on 127.0.0.1 (default 8333)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput | None:
    # Imported here: boto3 would otherwise load for every `modelpipe local ...` command's parser.
    from modelpipe.local.s3 import S3Credentials, SeaweedS3

    settings = S3Settings.from_env()
    access_key_id, secret_access_key = settings.key_pair()
    if settings.bucket is None:
        raise ConfigError(f"{AWS_S3_BUCKET} is not set", fix="export AWS_S3_BUCKET=<bucket to create>")
    server = SeaweedS3(
        args.dir,
        S3Credentials(access_key_id.get_secret_value(), secret_access_key.get_secret_value()),
        bucket=settings.bucket,
        port=args.port,
        region=settings.region,
    )

    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        # Only forward the signal: waiting here would race the main thread's wait() on the same child.
        nonlocal stopping
        stopping = True
        server.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.start()
    print(f"S3_ENDPOINT: {server.endpoint_url}", flush=True)
    print(f"BUCKET: {server.bucket}", flush=True)
    code = server.wait()
    server.stop()
    if stopping:
        log.info("S3 stopped")
        return None
    if code != 0:
        raise LocalRunError(f"SeaweedFS exited with code {code}", fix=f"see the log next to {args.dir}")
    return None
