"""Upload benchmark: `modelpipe upload` vs a single-stream put_object, and the cost of a no-change re-run.

Generates a >= 200 MB diffusers-shaped model folder, starts its own SeaweedFS on 127.0.0.1, and in one run
measures side by side:
1. baseline: every file sent with one ``put_object`` after the other (single stream, no multipart);
2. ``upload_model`` (verify, HEAD, parallel multipart via boto3's transfer manager, manifest last);
3. ``upload_model`` again with nothing changed.

Targets: (2) throughput >= 2x (1); (3) sends 0 bytes and takes <= 5% of (2). Exit 1 if a target is missed.

    .venv/bin/python benchmarks/upload.py --size-mb 256
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from modelpipe.config import S3Settings
from modelpipe.local.s3 import S3Credentials, SeaweedS3
from modelpipe.manifest import build_manifest, hash_files, write_manifest
from modelpipe.s3 import MIB, S3Location, make_s3_client, transfer_config
from modelpipe.steps.upload import upload_model

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
    return manifest.total_size + (root / "manifest.json").stat().st_size


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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=256, help="model size in MiB (>= 200 for the target)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; medians are reported")
    parser.add_argument("--max-concurrency", type=int, default=10)
    parser.add_argument("--chunk-size-mb", type=int, default=16)
    parser.add_argument("--work-dir", type=Path, help="where model and S3 data go (default: a temp folder)")
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="upload-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    baseline_s: list[float] = []
    first_s: list[float] = []
    rerun_s: list[float] = []
    rerun_bytes: list[int] = []
    try:
        model = work / "model"
        print(f"generating a {args.size_mb} MiB model in {model} ...", file=sys.stderr)
        total = make_model(model, args.size_mb)
        credentials = S3Credentials(
            access_key_id="bench-access", secret_access_key="bench-secret-key-0123456789"
        )
        with SeaweedS3(work / "s3", credentials, bucket=BUCKET) as server:
            client = make_s3_client(
                S3Settings.from_env(server.data_connection_env()),
                max_pool_connections=args.max_concurrency + 4,
            )
            config = transfer_config(max_concurrency=args.max_concurrency, chunksize=args.chunk_size_mb * MIB)
            for round_no in range(args.rounds):
                dest = S3Location(BUCKET, f"model-{round_no}")

                def ours(dest: S3Location = dest) -> None:
                    first = upload_model(src=model, dest=dest, client=client, config=config)
                    assert first.bytes_sent == total, "first upload must send everything"
                    first_s.append(first.seconds)

                def baseline(round_no: int = round_no) -> None:
                    baseline_s.append(single_stream_put(client, model, f"baseline-{round_no}"))

                # Alternate which goes first so page cache and server warm-up do not favour one side.
                for run in (baseline, ours) if round_no % 2 == 0 else (ours, baseline):
                    run()
                rerun = upload_model(src=model, dest=dest, client=client, config=config)
                rerun_s.append(rerun.seconds)
                rerun_bytes.append(rerun.bytes_sent)
                print(
                    f"round {round_no + 1}: single-stream {baseline_s[-1]:.2f} s, "
                    f"upload {first_s[-1]:.2f} s, "
                    f"re-run {rerun_s[-1]:.3f} s / {rerun_bytes[-1]} B",
                    file=sys.stderr,
                )
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    mb = total / MIB
    base, first_med, rerun_med = median(baseline_s), median(first_s), median(rerun_s)
    speedup = base / first_med
    rerun_share = rerun_med / first_med
    print(
        f"model: {mb:.1f} MiB in {len(WEIGHT_SHARES) + len(SMALL_FILES) + 1} files; "
        f"{args.rounds} rounds (medians)"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"CPU pressure (some avg10) {cpu_pressure()}"
    )
    print(f"single-stream put_object:  {base:7.2f} s  {mb / base:7.1f} MiB/s")
    print(
        f"modelpipe upload (first):  {first_med:7.2f} s  {mb / first_med:7.1f} MiB/s  "
        "(incl. sha256 verify, HEADs)"
    )
    print(f"modelpipe upload (re-run): {rerun_med:7.3f} s  max bytes sent {max(rerun_bytes)}")
    print(f"throughput ratio upload / single-stream: {speedup:.2f}x (target >= 2.00x)")
    print(
        f"re-run time / first upload: {rerun_share:.1%} (target <= 5.0%); "
        f"re-run bytes {max(rerun_bytes)} (target 0)"
    )
    met = speedup >= 2.0 and max(rerun_bytes) == 0 and rerun_share <= 0.05
    print("targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
