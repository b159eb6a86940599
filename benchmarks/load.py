"""Hold N clients for T seconds against the runtime; print status counts, latency, readiness and memory.

Each client loops over valid requests (V1, V2 JSON, V2 binary, OpenAI in turn), honouring Retry-After on
429/503, while a prober polls `/v2/models/{name}/ready` as a kubelet would (but every --probe-interval).
Printed: status counts (and whether every 429/503 carried Retry-After), p50/p99 of the answered requests,
readiness-probe p50/p99/max, and the server's RSS after warm-up and at the end.

    .venv/bin/python benchmarks/load.py                       # 64 clients x 60 s, tiny model, 64x64, 2 steps
    .venv/bin/python benchmarks/load.py --clients 8 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import psutil
from runtime_setup import model_dir_or_tiny, model_parser, start_bench_runtime


def parse_args() -> argparse.Namespace:
    parser = model_parser(__doc__, steps=2)
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to hold them (default 60)")
    parser.add_argument(
        "--probe-interval", type=float, default=0.1, help="seconds between readiness probes (default 0.1)"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="readiness probes on the idle server first, the baseline of this host (default 10)",
    )
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def requests_for(model: str, size: int, steps: int) -> list[tuple[str, dict[str, str], bytes]]:
    """One valid request per protocol: (path, headers, body)."""
    import orjson

    knobs = {"num_inference_steps": steps, "height": size, "width": size}
    json_type = {"Content-Type": "application/json"}
    v1 = orjson.dumps({"instances": [{"prompt": "a red fox in the snow", **knobs}]})
    v2 = orjson.dumps(
        {
            "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["a lighthouse"]}],
            "parameters": knobs,
        }
    )
    prompt = b"a city at dusk"
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "prompt",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": 4 + len(prompt)},
                }
            ],
            "parameters": {**knobs, "binary_data_output": True},
        }
    )
    binary = header + len(prompt).to_bytes(4, "little") + prompt
    binary_headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    openai = orjson.dumps(
        {"prompt": "a watercolor owl", "size": f"{size}x{size}", "num_inference_steps": steps}
    )
    return [
        (f"/v1/models/{model}:predict", json_type, v1),
        (f"/v2/models/{model}/infer", json_type, v2),
        (f"/v2/models/{model}/infer", binary_headers, binary),
        ("/openai/v1/images/generations", json_type, openai),
    ]


class Tally:
    def __init__(self) -> None:
        self.statuses: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []
        self.missing_retry_after = 0


async def client_loop(
    client: httpx.AsyncClient,
    requests: list[tuple[str, dict[str, str], bytes]],
    first: int,
    end: float,
    tally: Tally,
) -> None:
    i = first
    while time.monotonic() < end:
        path, headers, body = requests[i % len(requests)]
        i += 1
        started = time.monotonic()
        try:
            response = await client.post(path, content=body, headers=headers)
        except httpx.HTTPError as err:
            tally.statuses[type(err).__name__] += 1
            continue
        tally.statuses[str(response.status_code)] += 1
        if response.status_code == 200:
            tally.latencies.append(time.monotonic() - started)
        elif response.status_code in (429, 503):
            retry_after = response.headers.get("retry-after")
            if retry_after is None:
                tally.missing_retry_after += 1
            await asyncio.sleep(min(float(retry_after or 1), max(0.0, end - time.monotonic())))


async def run_clients(
    url: str, requests: list[tuple[str, dict[str, str], bytes]], args: argparse.Namespace
) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    end = time.monotonic() + args.seconds
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        await asyncio.gather(*(client_loop(client, requests, i, end, tally) for i in range(args.clients)))
    return tally


def probe(url: str, interval: float, seconds: float, results: Connection) -> None:
    """Poll readiness for ``seconds``; send back (latencies, failures). Runs in its own process, as a kubelet
    does, so the load generator's own GIL does not inflate the measured latency."""
    latencies: list[float] = []
    failures: list[str] = []
    end = time.monotonic() + seconds
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                status = client.get(url).status_code
            except httpx.HTTPError as err:
                failures.append(type(err).__name__)
            else:
                latencies.append(time.monotonic() - started)
                if status != 200:
                    failures.append(str(status))
            time.sleep(interval)
    results.send((latencies, failures))
    results.close()


def start_prober(url: str, interval: float, seconds: float) -> tuple[multiprocessing.Process, Connection]:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=probe, args=(url, interval, seconds, sender), daemon=True)
    process.start()
    return process, receiver


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        model_dir = model_dir_or_tiny(args.model_dir, Path(tmp))
        server = start_bench_runtime(model_dir, Path(tmp) / "runtime.log", threads=args.threads)
        try:
            requests = requests_for(server.model_name, args.size, args.steps)
            with httpx.Client(base_url=server.url, timeout=300) as warm:
                for path, headers, body in requests:
                    warm.post(path, content=body, headers=headers).raise_for_status()
            process = psutil.Process(server.process.pid)
            rss_start = process.memory_info().rss
            idle, idle_results = start_prober(server.ready_url, args.probe_interval, args.idle_seconds)
            idle_latencies, _ = idle_results.recv()
            idle.join()
            prober, results = start_prober(server.ready_url, args.probe_interval, args.seconds)
            tally = asyncio.run(run_clients(server.url, requests, args))
            probe_latencies, probe_failures = results.recv()
            prober.join()
            rss_end = process.memory_info().rss
            alive = server.process.poll() is None
            log_has_traceback = "Traceback" in server.log()
        finally:
            server.stop()
    answered = sum(tally.statuses.values())
    allowed = {"200", "429", "503"}
    only_allowed = set(tally.statuses) <= allowed and tally.missing_retry_after == 0
    probe_p99 = percentile(probe_latencies, 0.99)
    rss_ratio = rss_end / rss_start
    print(f"model {model_dir.name}, {args.size}x{args.size}, {args.steps} steps, {args.threads} thread(s)")
    print(f"clients {args.clients} for {args.seconds:g} s: {answered} requests answered")
    print("statuses " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items())))
    print(f"429/503 without Retry-After: {tally.missing_retry_after}")
    if tally.latencies:
        print(
            f"latency of 200s: p50 {statistics.median(tally.latencies):.2f} s, "
            f"p99 {percentile(tally.latencies, 0.99):.2f} s, max {max(tally.latencies):.2f} s"
        )
    idle_ms = [seconds * 1000 for seconds in idle_latencies]
    print(
        f"readiness probe idle ({len(idle_ms)} probes): p50 {statistics.median(idle_ms):.1f} ms, "
        f"p99 {percentile(idle_ms, 0.99):.1f} ms (this host's baseline; load average "
        f"{' '.join(f'{x:.1f}' for x in psutil.getloadavg())})"
    )
    probe_ms = [seconds * 1000 for seconds in probe_latencies]
    print(
        f"readiness probe ({len(probe_ms)} probes): p50 {statistics.median(probe_ms):.1f} ms, "
        f"p99 {probe_p99 * 1000:.1f} ms, max {max(probe_ms):.1f} ms, failures {len(probe_failures)}"
    )
    print(f"RSS warm start {rss_start / 2**20:.0f} MiB, end {rss_end / 2**20:.0f} MiB, ratio {rss_ratio:.3f}")
    checks = {
        "only 200, or 429/503 with Retry-After": only_allowed,
        "readiness p99 <= 50 ms and never unready": probe_p99 <= 0.050 and not probe_failures,
        "RSS end within 10% of warm start": abs(rss_ratio - 1) <= 0.10,
        "server alive, no traceback in its log": alive and not log_has_traceback,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
