"""Dynamic batching vs raw diffusers, side by side in one run on the same model, size and steps.

Prints raw diffusers images/s at batch 1 and batch N (--batch, default 8), the runtime's images/s with N
closed-loop clients against `--max_batch_size N` and against `--max_batch_size 1`, p50/p99 latencies, and the
ratios the runtime targets: batched runtime >= 0.9x raw batch-N throughput, and >= 90% of the raw
batch-N/batch-1 gain captured.

    .venv/bin/python benchmarks/runtime_batching.py                    # tiny random model, 64x64, 2 steps
    .venv/bin/python benchmarks/runtime_batching.py --model-dir /models/sd15 --size 512 --steps 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runtime_setup import model_dir_or_tiny, model_parser, start_bench_runtime


def parse_args() -> argparse.Namespace:
    parser = model_parser(__doc__, steps=2)
    parser.add_argument("--batch", type=int, default=8, help="batch size limit N (default 8)")
    parser.add_argument("--images", type=int, default=48, help="images per measurement (default 48)")
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=20.0,
        help="--max_batch_delay_ms of the runtime",
    )
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_raw(model_dir: Path, args: argparse.Namespace) -> dict[int, float]:
    """Images/s of plain `pipeline(prompt=[...] * b, generator=[...])` calls at batch 1 and batch N."""
    import torch
    from diffusers import AutoPipelineForText2Image

    torch.set_num_threads(args.threads)
    pipe = AutoPipelineForText2Image.from_pretrained(str(model_dir), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    rates = {}
    for batch in (1, args.batch):

        def call(batch: int = batch, first_seed: int = 0) -> None:
            pipe(
                prompt=[f"a photo number {first_seed + i}" for i in range(batch)],
                num_inference_steps=args.steps,
                height=args.size,
                width=args.size,
                generator=[torch.Generator().manual_seed(first_seed + i) for i in range(batch)],
            )

        call()  # warm-up
        calls = max(1, args.images // batch)
        started = time.perf_counter()
        for c in range(calls):
            call(first_seed=c * batch)
        rates[batch] = calls * batch / (time.perf_counter() - started)
    return rates


def measure_runtime(
    model_dir: Path, args: argparse.Namespace, max_batch_size: int, log: Path
) -> dict[str, float]:
    """Images/s and latencies of N closed-loop single-image V1 clients against a runtime subprocess."""
    import httpx

    server = start_bench_runtime(
        model_dir,
        log,
        threads=args.threads,
        max_batch_size=max_batch_size,
        max_batch_delay_ms=args.delay_ms,
        max_queue=4 * args.batch,
        max_images_per_request=1,
    )
    url = f"{server.url}/v1/models/{server.model_name}:predict"
    try:
        with httpx.Client(timeout=600) as client:

            def one(i: int) -> float:
                started = time.perf_counter()
                body = {
                    "prompt": f"a photo number {i}",
                    "seed": i,
                    "num_inference_steps": args.steps,
                }
                response = client.post(
                    url,
                    json={"instances": [{**body, "height": args.size, "width": args.size}]},
                )
                response.raise_for_status()
                return time.perf_counter() - started

            with ThreadPoolExecutor(args.batch) as pool:
                list(pool.map(one, range(args.batch)))  # warm-up
                started = time.perf_counter()
                latencies = list(pool.map(one, range(args.images)))
                elapsed = time.perf_counter() - started
    finally:
        server.stop()
    return {
        "images_per_s": args.images / elapsed,
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
    }


def main() -> int:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        model_dir = model_dir_or_tiny(args.model_dir, Path(tmp))
        n = args.batch
        raw = measure_raw(model_dir, args)
        batched = measure_runtime(model_dir, args, n, Path(tmp) / "batched.log")
        single = measure_runtime(model_dir, args, 1, Path(tmp) / "single.log")
    raw_gain = raw[n] - raw[1]
    captured = (batched["images_per_s"] - raw[1]) / raw_gain if raw_gain > 0 else float("nan")
    print(f"model {model_dir.name}, {args.size}x{args.size}, {args.steps} steps, {args.threads} thread(s)")
    print(f"raw diffusers batch 1            {raw[1]:8.2f} images/s")
    print(f"raw diffusers batch {n:<2}           {raw[n]:8.2f} images/s")
    for name, result in (
        (f"runtime max_batch_size {n:<2}", batched),
        ("runtime max_batch_size 1 ", single),
    ):
        print(
            f"{name} c={n:<2}  {result['images_per_s']:8.2f} images/s"
            f"  p50 {result['p50'] * 1000:8.1f} ms  p99 {result['p99'] * 1000:8.1f} ms"
        )
    print(f"ratio runtime batched / raw batch {n}: {batched['images_per_s'] / raw[n]:.2f} (target >= 0.90)")
    print(f"raw batch-{n}/batch-1 gain captured by the runtime: {captured:.0%} (target >= 90%)")
    print(
        "ratio runtime batched / runtime max_batch_size 1: "
        f"{batched['images_per_s'] / single['images_per_s']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
