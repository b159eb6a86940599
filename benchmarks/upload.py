"""Upload benchmark: `modelpipe upload` vs a single-stream put_object, on loopback and an emulated WAN link.

Generates a >= 200 MB diffusers-shaped model folder, starts its own SeaweedFS and in one run measures, per
network condition, side by side:
1. baselines: every file sent with one ``put_object`` after the other (single stream, no multipart): the
   gate's is a plain boto3 client (payload signed, as botocore does over http: the issue's baseline);
   for information, a stream with no payload hash and no checksum at all (the fastest one stream goes,
   with nothing verified);
2. ``upload_model`` (HEADs, then as the link allows: store-verified single requests on a fast link,
   parallel multipart hashed as read on a slow one; manifest last);
3. ``upload_model`` again with nothing changed.

Conditions: ``loopback`` (SeaweedFS on 127.0.0.1: no latency, the server's CPU is the limit) and, when running
as root with ``ip`` and /dev/net/tun, one ``emulated`` link per ``--rtt-ms`` value (SeaweedFS inside a network
namespace this run creates, reached over a point-to-point link with that RTT and an optional rate limit). The
link is a TUN device on each side joined by a delay line (a child process of this script that holds each IP
packet for RTT/2 per direction): the kernel here has no netem qdisc (CONFIG_NET_SCH_NETEM unset), and TCP end
to end still sees the real round trips, slow start and windows. Namespace and devices are removed on exit,
also on failure.

Targets, gated on every condition measured, against the signed single stream: (2) >= 1.0x (1) on loopback
(the in-cluster MinIO case: no latency, the server's CPU is the limit) and on every emulated link, never
slower than one stream; (2) >= 2x (1) on links of 50 ms RTT or more (a store across a region, where one TCP
stream is bounded by window/RTT); everywhere (3) sends 0 bytes and takes <= 5% of (2). The S3 server's CPU
use is printed beside each. Exit 1 if any target is missed.

    sudo .venv/bin/python benchmarks/upload.py --size-mb 256 --rtt-ms 20 50
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import heapq
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from modelpipe.config import S3Settings
from modelpipe.local.s3 import S3Credentials, SeaweedS3
from modelpipe.manifest import MANIFEST_NAME, build_manifest, hash_files, write_manifest
from modelpipe.s3 import DEFAULT_MAX_CONCURRENCY, DEFAULT_MULTIPART_CHUNKSIZE, MIB, S3Location, make_s3_client
from modelpipe.steps.upload import upload_model
from modelpipe.uploads import UploadConfig

BUCKET = "bench"
# Share of the model each weight file gets, roughly as in Stable Diffusion 1.5 (unet > text encoder > vae).
WEIGHT_SHARES = {
    "unet/diffusion_pytorch_model.safetensors": 0.62,
    "text_encoder/model.safetensors": 0.24,
    "vae/diffusion_pytorch_model.safetensors": 0.14,
}
SMALL_FILES = {
    "model_index.json": json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet"]}),
    "unet/config.json": "{}",
    "text_encoder/config.json": "{}",
    "vae/config.json": "{}",
    "scheduler/scheduler_config.json": "{}",
    "tokenizer/tokenizer_config.json": "{}",
    "tokenizer/tokenizer.json": json.dumps({"model": {"vocab": {str(i): i for i in range(2000)}}}),
}
NETNS_PREFIX = "upload-bench-"
# From this RTT on, the parallel upload must be twice as fast as one stream.
WINDOW_BOUND_RTT_MS = 50.0
# Private /30s used only between this process and the namespace it creates; the third octet varies by pid
# so two runs on one machine do not collide.
LINK_NET = "10.213"
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
# The delay line exits on its own after this long even if its parent vanished without closing the pipe.
FORWARDER_MAX_SECONDS = 1800.0
# Scheduling priority of the delay line (root may lower nice values): ahead of the processes it serves.
DELAY_LINE_NICE = -10
# Packets queued in one direction beyond this are dropped (a bounded router buffer).
FORWARDER_QUEUE_BYTES = 32 * MIB


@dataclass(frozen=True)
class LinkSpec:
    """Emulated link parameters."""

    rtt_ms: float
    rate_mbit: float | None
    mtu: int
    loss_pct: float = 0.0

    def describe(self) -> str:
        rate = f"{self.rate_mbit:g} Mbit/s" if self.rate_mbit else "unlimited rate"
        return (
            f"RTT {self.rtt_ms:g} ms ({self.rtt_ms / 2:g} ms each way), {rate}, MTU {self.mtu}, "
            f"random loss {self.loss_pct:g}% per packet, delay line at nice {DELAY_LINE_NICE}"
        )


def forward_link(host_dev: str, ns_dev: str, spec: LinkSpec) -> int:
    """Delay line: create two TUN devices and pass IP packets between them after RTT/2 (plus serialisation).

    Prints ``ready`` once both devices exist, then runs until stdin closes (the parent's end of the pipe).
    """
    fds = {}
    for name in (host_dev, ns_dev):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        fds[name] = fd
    print("ready", flush=True)
    peer = {fds[host_dev]: fds[ns_dev], fds[ns_dev]: fds[host_dev]}
    one_way = spec.rtt_ms / 2000.0
    byte_seconds = 8.0 / (spec.rate_mbit * 1e6) if spec.rate_mbit else 0.0
    busy_until = dict.fromkeys(peer, 0.0)
    queued_bytes = dict.fromkeys(peer, 0)
    pending: list[tuple[float, int, int, int, bytes]] = []  # (release, seq, out_fd, in_fd, packet)
    seq = 0
    # Fixed seed: the same loss pattern for every run and both sides of the comparison's packet stream.
    dice = random.Random(0)
    poller = select.poll()
    for fd in (*peer, sys.stdin.fileno()):
        poller.register(fd, select.POLLIN)
    stop_at = time.monotonic() + FORWARDER_MAX_SECONDS
    while time.monotonic() < stop_at:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, _, out_fd, in_fd, packet = heapq.heappop(pending)
            queued_bytes[in_fd] -= len(packet)
            # A full receiving stack drops the packet, as on a real link.
            with contextlib.suppress(BlockingIOError):
                os.write(out_fd, packet)
        timeout_ms = 200 if not pending else max(0, int((pending[0][0] - now) * 1000) + 1)
        for fd, _ in poller.poll(timeout_ms):
            if fd == sys.stdin.fileno():
                return 0
            for _ in range(64):
                try:
                    packet = os.read(fd, spec.mtu + 64)
                except BlockingIOError:
                    break
                if queued_bytes[fd] + len(packet) > FORWARDER_QUEUE_BYTES:
                    continue
                if spec.loss_pct and dice.random() * 100 < spec.loss_pct:
                    continue
                now = time.monotonic()
                sent = max(now, busy_until[fd]) + len(packet) * byte_seconds
                busy_until[fd] = sent
                queued_bytes[fd] += len(packet)
                seq += 1
                heapq.heappush(pending, (sent + one_way, seq, peer[fd], fd, packet))
    return 0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def link_unavailable_reason() -> str | None:
    """Why a link cannot be emulated here (None if it can)."""
    if os.geteuid() != 0:
        return "not running as root"
    if shutil.which("ip") is None:
        return "the 'ip' command is missing"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return "/dev/net/tun is not available"
    return None


def remove_stale_namespaces() -> None:
    """Delete namespaces an earlier run of this script left behind (its pid no longer exists)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for match in re.finditer(rf"^{NETNS_PREFIX}(\d+)\b", listing, flags=re.MULTILINE):
        if not Path(f"/proc/{match.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", match.group(0)], capture_output=True, check=False)


@dataclass
class EmulatedLink:
    """A network namespace reached from here over a TUN pair joined by the delay line."""

    spec: LinkSpec
    netns: str = field(default_factory=lambda: f"{NETNS_PREFIX}{os.getpid()}")
    host_dev: str = field(default_factory=lambda: f"ubh{os.getpid() % 1000000}")
    ns_dev: str = field(default_factory=lambda: f"ubn{os.getpid() % 1000000}")
    _forwarder: subprocess.Popen[str] | None = None
    _up: bool = False

    @property
    def host_ip(self) -> str:
        return f"{LINK_NET}.{os.getpid() % 250}.1"

    @property
    def ns_ip(self) -> str:
        return f"{LINK_NET}.{os.getpid() % 250}.2"

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def __enter__(self) -> EmulatedLink:
        atexit.register(self.close)
        self._up = True
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        remove_stale_namespaces()
        _ip("netns", "add", self.netns)
        command = [sys.executable, __file__, "--forward-link", self.host_dev, self.ns_dev]
        command += ["--rtt-ms", str(self.spec.rtt_ms), "--link-mtu", str(self.spec.mtu)]
        if self.spec.rate_mbit:
            command += ["--rate-mbit", str(self.spec.rate_mbit)]
        if self.spec.loss_pct:
            command += ["--loss-pct", str(self.spec.loss_pct)]
        self._forwarder = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # The delay line stands for a network, which does not queue for this host's CPU behind the S3
        # server and the client it carries packets for; starved, it adds delay and drops that no real
        # link has (both sides suffer, the many-stream side more).
        os.setpriority(os.PRIO_PROCESS, self._forwarder.pid, DELAY_LINE_NICE)
        assert self._forwarder.stdout is not None
        if self._forwarder.stdout.readline().strip() != "ready":
            raise RuntimeError(f"delay line failed to start (exit {self._forwarder.wait(5)})")
        _ip("link", "set", self.ns_dev, "netns", self.netns)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_dev)
        _ip("link", "set", self.host_dev, "mtu", str(self.spec.mtu), "txqueuelen", "2000", "up")
        _ip("-n", self.netns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_dev)
        _ip(
            "-n",
            self.netns,
            "link",
            "set",
            self.ns_dev,
            "mtu",
            str(self.spec.mtu),
            "txqueuelen",
            "2000",
            "up",
        )
        _ip("-n", self.netns, "link", "set", "lo", "up")

    def forwarder_cpu_seconds(self) -> float:
        """CPU time the delay line has used so far (to show whether it could be the bottleneck)."""
        return cpu_seconds(self._forwarder.pid) if self._forwarder is not None else 0.0

    def close(self) -> None:
        """Stop the delay line (its TUN devices go with it) and delete the namespace; idempotent."""
        if not self._up:
            return
        self._up = False
        forwarder, self._forwarder = self._forwarder, None
        if forwarder is not None:
            assert forwarder.stdin is not None
            forwarder.stdin.close()
            try:
                forwarder.wait(timeout=5)
            except subprocess.TimeoutExpired:
                forwarder.kill()
                forwarder.wait()
        subprocess.run(["ip", "link", "del", self.host_dev], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_rtt_ms(host: str, port: int, samples: int = 7) -> float:
    """Median TCP connect time to ``host:port`` (one round trip), to show the link is what we asked for."""
    times = []
    for _ in range(samples):
        started = time.monotonic()
        with socket.create_connection((host, port), timeout=5):
            times.append((time.monotonic() - started) * 1000)
    return median(times)


def make_model(root: Path, size_mb: int) -> int:
    """Write random weights and small configs plus manifest.json; returns the total bytes."""
    for rel, share in WEIGHT_SHARES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        remaining = int(size_mb * MIB * share)
        with path.open("wb") as handle:
            while remaining > 0:
                block = min(remaining, 8 * MIB)
                handle.write(os.urandom(block))
                remaining -= block
    for rel, text in SMALL_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    paths = [*WEIGHT_SHARES, *SMALL_FILES]
    manifest = build_manifest(source="file:///bench", revision="bench", files=hash_files(root, paths))
    write_manifest(root, manifest)
    return manifest.total_size + (root / MANIFEST_NAME).stat().st_size


def single_stream_put(client: object, root: Path, prefix: str) -> float:
    """Seconds to send every file with one put_object each, one after the other."""
    started = time.monotonic()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with path.open("rb") as body:
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(root).as_posix()}", Body=body)  # type: ignore[attr-defined]
    return time.monotonic() - started


def cpu_pressure() -> str:
    """Linux PSI CPU 'some avg10': share of time runnable tasks waited for a CPU (context for ratios)."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "n/a"
    return first.split()[1].removeprefix("avg10=") + "%"


@dataclass
class Measurement:
    """Timings of one network condition over all rounds."""

    name: str
    detail: str
    target: float
    default_s: list[float] = field(default_factory=list)
    plain_s: list[float] = field(default_factory=list)
    first_s: list[float] = field(default_factory=list)
    rerun_s: list[float] = field(default_factory=list)
    rerun_bytes: list[int] = field(default_factory=list)

    @property
    def baseline(self) -> float:
        """Median seconds of the signed single stream (what one plain put_object stream gets by default)."""
        return median(self.default_s)

    @property
    def speedup(self) -> float:
        return self.baseline / median(self.first_s)

    @property
    def rerun_share(self) -> float:
        return median(self.rerun_s) / median(self.first_s)

    def met(self) -> bool:
        return self.speedup >= self.target and max(self.rerun_bytes) == 0 and self.rerun_share <= 0.05

    def report(self, mb: float) -> None:
        default, plain = median(self.default_s), median(self.plain_s)
        first, rerun = median(self.first_s), median(self.rerun_s)
        print(f"[{self.name}] {self.detail}")
        print(f"  single-stream put_object, signed payload:  {default:7.2f} s  {mb / default:7.1f} MiB/s")
        print(f"  single-stream put_object, nothing checked: {plain:7.2f} s  {mb / plain:7.1f} MiB/s")
        print(f"  modelpipe upload (first):                  {first:7.2f} s  {mb / first:7.1f} MiB/s")
        print(
            f"  modelpipe upload (re-run):                 {rerun:7.3f} s  "
            f"max bytes sent {max(self.rerun_bytes)}"
        )
        print(
            f"  throughput ratio upload / single stream: {self.speedup:.2f}x (target >= {self.target:.2f}x); "
            f"vs the unchecked stream {plain / first:.2f}x (information)"
        )
        print(
            f"  re-run time / first upload: {self.rerun_share:.1%} (target <= 5.0%); "
            f"re-run bytes {max(self.rerun_bytes)} (target 0)"
        )
        print(f"  {'targets met' if self.met() else 'TARGET MISSED'}")


def default_boto3_client(server: SeaweedS3, credentials: S3Credentials) -> object:
    """A plain boto3 client: botocore signs the payload over http (hashing it); no extra checksum."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"),
    )


def measure(
    result: Measurement,
    server: SeaweedS3,
    credentials: S3Credentials,
    model: Path,
    total: int,
    args: argparse.Namespace,
) -> Measurement:
    """Alternate the baselines and ``upload_model`` for ``args.rounds`` rounds, each followed by a re-run.

    Every measured run gets a new client, as every pipeline step is a new process: no run inherits another's
    open connections and their grown TCP windows (on a 50 ms link, warm connections once hid a 1.2 s cost
    that only new ones paid: streams added mid-transfer starting cold).
    """

    def new_client() -> object:
        settings = S3Settings.from_env(server.data_connection_env())
        return make_s3_client(settings, max_pool_connections=args.max_concurrency + 12)

    client = new_client()
    plain = default_boto3_client(server, credentials)
    single = args.single_request_max_mb * MIB if args.single_request_max_mb else None
    config = UploadConfig(
        max_concurrency=args.max_concurrency, part_size=args.chunk_size_mb * MIB, single_request_max=single
    )
    # A fresh SeaweedFS allocates its volumes on the first writes; keep that out of every side's timing.
    with tempfile.TemporaryDirectory() as scratch:
        warm_up = Path(scratch) / "warm-up.bin"
        warm_up.write_bytes(os.urandom(2 * args.chunk_size_mb * MIB))
        single_stream_put(client, warm_up.parent, "warm-up")
        single_stream_put(plain, warm_up.parent, "warm-up-2")
    server_cpu = cpu_seconds(server.pid)
    started = time.monotonic()
    for round_no in range(args.rounds):
        dest = S3Location(BUCKET, f"model-{round_no}")

        def ours(dest: S3Location = dest) -> None:
            first = upload_model(src=model, dest=dest, client=new_client(), config=config)
            assert first.bytes_sent == total, "first upload must send everything"
            result.first_s.append(first.seconds)

        def with_defaults(round_no: int = round_no) -> None:
            fresh = default_boto3_client(server, credentials)
            result.default_s.append(single_stream_put(fresh, model, f"default-{round_no}"))

        def without_hash(round_no: int = round_no) -> None:
            result.plain_s.append(single_stream_put(new_client(), model, f"plain-{round_no}"))

        # Rotate which goes first so page cache and server warm-up favour no side.
        runs: list[Callable[[], None]] = [with_defaults, without_hash, ours]
        for run in runs[round_no % 3 :] + runs[: round_no % 3]:
            run()
        rerun = upload_model(src=model, dest=dest, client=new_client(), config=config)
        result.rerun_s.append(rerun.seconds)
        result.rerun_bytes.append(rerun.bytes_sent)
        print(
            f"{result.name} round {round_no + 1}: single-stream {result.default_s[-1]:.2f} s "
            f"(signed) / {result.plain_s[-1]:.2f} s (unchecked), upload {result.first_s[-1]:.2f} s, "
            f"re-run {result.rerun_s[-1]:.3f} s / {result.rerun_bytes[-1]} B",
            file=sys.stderr,
        )
    used, wall = cpu_seconds(server.pid) - server_cpu, time.monotonic() - started
    result.detail += (
        f"; SeaweedFS used {used:.1f} CPU s in {wall:.1f} s ({used / wall:.2f} of {os.cpu_count()} CPUs)"
    )
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=256, help="model size in MiB (>= 200 for the target)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per condition; medians")
    # Defaults are what `modelpipe upload` ships with, so the numbers describe the shipped settings.
    parser.add_argument("--max-concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY)
    parser.add_argument("--chunk-size-mb", type=int, default=DEFAULT_MULTIPART_CHUNKSIZE // MIB)
    parser.add_argument(
        "--single-request-max-mb", type=int, help="as `modelpipe upload` (default: chosen from the link)"
    )
    parser.add_argument("--work-dir", type=Path, help="where model and S3 data go (default: a temp folder)")
    parser.add_argument(
        "--link",
        choices=("auto", "emulated", "loopback"),
        default="auto",
        help="auto: loopback plus an emulated link when possible (root, ip, /dev/net/tun); "
        "emulated: fail if it is not possible; loopback: loopback only",
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        nargs="+",
        default=[20.0, 50.0],
        help="emulated round-trip time(s), one link each, each gated (default: 20 50)",
    )
    parser.add_argument("--rate-mbit", type=float, help="emulated link rate limit (default: none)")
    parser.add_argument(
        "--loss-pct", type=float, default=0.0, help="emulated random packet loss in %% (default 0)"
    )
    parser.add_argument(
        "--link-mtu",
        type=int,
        default=9000,
        help="emulated link MTU (default 9000: jumbo frames keep the Python delay line off the hot path)",
    )
    parser.add_argument("--forward-link", nargs=2, metavar=("HOST_DEV", "NS_DEV"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.rtt_ms) < 0 or (args.rate_mbit is not None and args.rate_mbit <= 0):
        parser.error("--rtt-ms must be >= 0 and --rate-mbit > 0")
    if not 0 <= args.loss_pct < 100:
        parser.error("--loss-pct must be in [0, 100)")
    if not 576 <= args.link_mtu <= 65000:
        parser.error("--link-mtu must be between 576 and 65000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = [
        LinkSpec(rtt_ms=rtt, rate_mbit=args.rate_mbit, mtu=args.link_mtu, loss_pct=args.loss_pct)
        for rtt in args.rtt_ms
    ]
    if args.forward_link:
        return forward_link(*args.forward_link, specs[0])
    emulate = args.link != "loopback"
    if emulate and (reason := link_unavailable_reason()):
        if args.link == "emulated":
            print(f"cannot emulate a network link: {reason}", file=sys.stderr)
            return 1
        print(f"note: {reason}, so no emulated link; measuring loopback only", file=sys.stderr)
        emulate = False
    # SIGTERM must unwind through the finally blocks that remove the namespace and the temp folder.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="upload-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    credentials = S3Credentials(access_key_id="bench-access", secret_access_key="bench-secret-key-0123456789")
    results: list[Measurement] = []
    try:
        model = work / "model"
        print(f"generating a {args.size_mb} MiB model in {model} ...", file=sys.stderr)
        total = make_model(model, args.size_mb)
        with SeaweedS3(work / "s3-loopback", credentials, bucket=BUCKET) as server:
            loopback = Measurement("loopback", "SeaweedFS on 127.0.0.1", target=1.0)
            results.append(measure(loopback, server, credentials, model, total, args))
        if emulate:
            for spec in specs:
                with EmulatedLink(spec) as link:
                    ns_server = SeaweedS3(
                        work / f"s3-emulated-{spec.rtt_ms:g}ms",
                        credentials,
                        bucket=BUCKET,
                        host=link.ns_ip,
                        command_prefix=link.exec_prefix,
                    )
                    with ns_server as server:
                        assert server.port is not None
                        rtt = measured_rtt_ms(link.ns_ip, server.port)
                        detail = (
                            f"SeaweedFS in netns {link.netns} at {link.ns_ip}, client at {link.host_ip}; "
                            f"{spec.describe()}; measured TCP connect RTT {rtt:.1f} ms"
                        )
                        started = time.monotonic()
                        name = f"emulated {spec.rtt_ms:g} ms"
                        # Never slower than one stream; at 50 ms and more, where one TCP stream is bounded by
                        # window / RTT, twice as fast (parallel streams are what such a link needs).
                        target = 2.0 if spec.rtt_ms >= WINDOW_BOUND_RTT_MS else 1.0
                        condition = Measurement(name, detail, target=target)
                        results.append(measure(condition, server, credentials, model, total, args))
                        results[-1].detail += (
                            f"; delay line used {link.forwarder_cpu_seconds():.1f} CPU s "
                            f"in {time.monotonic() - started:.1f} s"
                        )
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    mb = total / MIB
    print(
        f"model: {mb:.1f} MiB in {len(WEIGHT_SHARES) + len(SMALL_FILES) + 1} files; "
        f"{args.rounds} rounds per condition (medians); max concurrency {args.max_concurrency}, "
        f"part {args.chunk_size_mb} MiB, single request up to "
        f"{f'{args.single_request_max_mb} MiB' if args.single_request_max_mb else 'what the link allows'}"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"CPU pressure (some avg10) {cpu_pressure()}"
    )
    for result in results:
        result.report(mb)
    if not emulate:
        print("note: no emulated link in this run (loopback only)")
    missed = [result.name for result in results if not result.met()]
    print(f"overall: {'targets met' if not missed else 'TARGET MISSED on ' + ', '.join(missed)}")
    return 0 if not missed else 1


if __name__ == "__main__":
    raise SystemExit(main())
