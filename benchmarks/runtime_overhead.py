"""Per-protocol serving overhead: end-to-end latency minus the pipeline call, side by side in one run.

One runtime (`--max_batch_size 1 --max_batch_delay_ms 0`, so no batching wait or padding) serves sequential
single-image requests over V1, V2 JSON, V2 binary and OpenAI. The pipeline time is the server's own
`diffusers_batch_seconds`, read around every request; image encoding (PNG + base64) is measured separately
on the returned image. Target: overhead <= 3 ms p50 plus image encoding.

The client is the standard library's keep-alive `http.client`: what is measured is the runtime's overhead,
not the client's (httpx adds about 0.5 ms per request on a 2-core host). The HTTP floor uses the same client.

    .venv/bin/python benchmarks/runtime_overhead.py
    .venv/bin/python benchmarks/runtime_overhead.py --model-dir /models/sd15 --size 512 --steps 4
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from runtime_setup import model_dir_or_tiny, model_parser, start_bench_runtime


def parse_args() -> argparse.Namespace:
    parser = model_parser(__doc__, steps=1)
    parser.add_argument("--requests", type=int, default=30, help="requests per protocol (default 30)")
    return parser.parse_args()


class Connection:
    """One keep-alive HTTP/1.1 connection to the runtime; every call raises on a non-2xx answer."""

    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> bytes:
        self._conn.request(method, path, body=body, headers=headers or {})
        response = self._conn.getresponse()
        data = response.read()
        if not 200 <= response.status < 300:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}: {data[:300]!r}")
        return data

    def post_json(self, path: str, body: object) -> bytes:
        return self.request("POST", path, orjson.dumps(body), {"Content-Type": "application/json"})

    def close(self) -> None:
        self._conn.close()


def batch_seconds(conn: Connection, server) -> tuple[float, float]:
    from tests.integration.runtime.clients import metric_value

    text = conn.request("GET", "/metrics").decode()
    labels = {"model_name": server.model_name}
    return (
        metric_value(text, "diffusers_batch_seconds_sum", **labels),
        metric_value(text, "diffusers_batch_seconds_count", **labels),
    )


def protocol_calls(conn: Connection, server, args: argparse.Namespace) -> dict[str, Callable[[int], None]]:
    from tests.integration.runtime.clients import binary_prompt_request, bytes_tensor

    knobs = {"num_inference_steps": args.steps, "height": args.size, "width": args.size}
    name = server.model_name

    def v1(seed: int) -> None:
        conn.post_json(
            f"/v1/models/{name}:predict", {"instances": [{"prompt": "a cat", "seed": seed, **knobs}]}
        )

    def v2_json(seed: int) -> None:
        prompt = {"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["a cat"]}
        conn.post_json(
            f"/v2/models/{name}/infer", {"inputs": [prompt], "parameters": {"seed": seed, **knobs}}
        )

    def v2_binary(seed: int) -> None:
        body, headers = binary_prompt_request(
            bytes_tensor([b"a cat"]),
            extra={
                "parameters": {"seed": seed, **knobs},
                "outputs": [{"name": "image", "parameters": {"binary_data": True}}],
            },
        )
        conn.request("POST", f"/v2/models/{name}/infer", body, headers)

    def openai(seed: int) -> None:
        body = {
            "prompt": "a cat",
            "seed": seed,
            "size": f"{args.size}x{args.size}",
            "num_inference_steps": args.steps,
        }
        conn.post_json("/openai/v1/images/generations", body)

    return {"v1": v1, "v2-json": v2_json, "v2-binary": v2_binary, "openai": openai}


def encoding_ms(conn: Connection, server, args: argparse.Namespace) -> float:
    """PNG (runtime settings) + base64 of one generated image, median of 20, in ms."""
    from diffusers_runtime.model import encode_image
    from PIL import Image

    instance = {"prompt": "a cat", "seed": 1, "num_inference_steps": args.steps, "height": args.size}
    answer = conn.post_json(
        f"/v1/models/{server.model_name}:predict", {"instances": [{**instance, "width": args.size}]}
    )
    image = Image.open(io.BytesIO(base64.b64decode(orjson.loads(answer)["predictions"][0]["image"]["b64"])))
    image.load()
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        base64.b64encode(encode_image(image, "PNG"))
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        model_dir = model_dir_or_tiny(args.model_dir, Path(tmp))
        server = start_bench_runtime(
            model_dir, Path(tmp) / "runtime.log", threads=args.threads, max_batch_size=1, max_batch_delay_ms=0
        )
        rows = []
        try:
            conn = Connection(server.url)
            try:
                calls = protocol_calls(conn, server, args)
                for call in calls.values():
                    call(0)  # warm-up
                encode = encoding_ms(conn, server, args)
                floor = []
                ready_path = urlsplit(server.ready_url).path
                for _ in range(args.requests):
                    started = time.perf_counter()
                    conn.request("GET", ready_path)
                    floor.append((time.perf_counter() - started) * 1000)
                # Round-robin over protocols so load changes hit all alike; the server's pipeline-time sum is
                # read around every request, pairing each end-to-end time with its own pipeline call.
                samples: dict[str, list[tuple[float, float]]] = {protocol: [] for protocol in calls}
                for i in range(args.requests):
                    for protocol, call in calls.items():
                        before, _ = batch_seconds(conn, server)
                        started = time.perf_counter()
                        call(i)
                        latency = time.perf_counter() - started
                        after, _ = batch_seconds(conn, server)
                        samples[protocol].append((latency, after - before))
                for protocol, pairs in samples.items():
                    e2e = statistics.median(lat for lat, _ in pairs) * 1000
                    pipeline = statistics.median(pipe for _, pipe in pairs) * 1000
                    overhead = [(lat - pipe) * 1000 for lat, pipe in pairs]
                    rows.append((protocol, e2e, pipeline, overhead))
            finally:
                conn.close()
        finally:
            server.stop()
    print(
        f"model {model_dir.name}, {args.size}x{args.size}, {args.steps} step(s), "
        f"{args.requests} requests each"
    )
    print(f"image encoding (PNG + base64) p50: {encode:.2f} ms")
    print(
        "HTTP floor on this host (GET readiness, http.client keep-alive) p50: "
        f"{statistics.median(floor):.2f} ms"
    )
    for protocol, e2e, pipeline, overhead in rows:
        p50 = statistics.median(overhead)
        print(
            f"{protocol:<10} e2e p50 {e2e:8.2f} ms  pipeline p50 {pipeline:8.2f} ms  "
            f"overhead p50 {p50:6.2f} ms  minus encoding {p50 - encode:6.2f} ms (target <= 3 ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
