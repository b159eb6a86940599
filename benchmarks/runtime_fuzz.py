"""Thousands of hostile requests against the runtime with default flags, over V1, V2 JSON, V2 binary and
OpenAI, sent by concurrent clients while canary clients send small valid requests.

The cases come from tests/reliability/runtime_hostile.py (hypothesis strategies), the same ones the
reliability suite sends by the hundred. Printed: answers by protocol and status, problems (5xx, no answer,
a valid request refused or slower than 30 s), the slowest valid answer, readiness and serving afterwards,
and the server's RSS before and after.

    .venv/bin/python benchmarks/runtime_fuzz.py                    # 2000 requests, 8 clients
    .venv/bin/python benchmarks/runtime_fuzz.py --requests 300 --clients 4
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from hypothesis import HealthCheck, Phase, given, settings
from runtime_setup import REPO_ROOT, model_dir_or_tiny, model_parser, start_bench_runtime

# The fuzz cases are the reliability tests' own hypothesis strategies, imported from the checkout.
sys.path.insert(0, str(REPO_ROOT))
from tests.reliability.runtime_hostile import VALID_LATENCY_S, Case, Outcome, hostile_cases, problem, send


def parse_args() -> argparse.Namespace:
    parser = model_parser(__doc__, steps=2)
    parser.add_argument("--requests", type=int, default=2000, help="hostile requests (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent hostile clients (default 8)")
    parser.add_argument("--canaries", type=int, default=2, help="clients sending valid requests (default 2)")
    return parser.parse_args()


def draw_cases(model: str, count: int) -> list[Case]:
    """``count`` cases drawn by hypothesis (generation only: nothing to shrink)."""
    cases: list[Case] = []

    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=hostile_cases(model))
    def collect(case: Case) -> None:
        cases.append(case)

    collect()
    return cases


def canary(url: str, model: str, stop: threading.Event, outcomes: list[Outcome]) -> None:
    body = b'{"instances": [{"prompt": "canary", "num_inference_steps": 2, "height": 64, "width": 64}]}'
    case = Case(
        "canary", f"/v1/models/{model}:predict", body, {"Content-Type": "application/json"}, valid=True
    )
    with httpx.Client(base_url=url) as client:
        while not stop.is_set():
            outcomes.append(send(client, case))


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        model_dir = model_dir_or_tiny(args.model_dir, Path(tmp))
        server = start_bench_runtime(model_dir, Path(tmp) / "runtime.log", threads=args.threads)
        try:
            cases = draw_cases(server.model_name, args.requests)
            warm = {"instances": [{"prompt": "warm", "num_inference_steps": 2, "height": 64, "width": 64}]}
            httpx.post(f"{server.url}/v1/models/{server.model_name}:predict", json=warm, timeout=120)
            process = psutil.Process(server.process.pid)
            rss_before = process.memory_info().rss
            stop = threading.Event()
            canary_outcomes: list[Outcome] = []
            canaries = [
                threading.Thread(target=canary, args=(server.url, server.model_name, stop, canary_outcomes))
                for _ in range(args.canaries)
            ]
            for thread in canaries:
                thread.start()
            started = time.monotonic()
            local = threading.local()

            def send_one(case: Case) -> Outcome:
                if not hasattr(local, "client"):
                    local.client = httpx.Client(base_url=server.url)
                return send(local.client, case)

            with ThreadPoolExecutor(args.clients) as pool:
                outcomes = list(pool.map(send_one, cases))
            elapsed = time.monotonic() - started
            stop.set()
            for thread in canaries:
                thread.join()
            alive = server.process.poll() is None
            with httpx.Client(base_url=server.url, timeout=120) as client:
                ready = client.get(f"/v2/models/{server.model_name}/ready").status_code
                serving = client.post(f"/v1/models/{server.model_name}:predict", json=warm).status_code
            rss_after = process.memory_info().rss
            log_has_traceback = "Traceback" in server.log()
        finally:
            server.stop()
    table: collections.Counter[tuple[str, int]] = collections.Counter(
        (o.case.protocol, o.status) for o in outcomes + canary_outcomes
    )
    problems = [p for o in outcomes + canary_outcomes if (p := problem(o)) is not None]
    valid = [o for o in outcomes + canary_outcomes if o.case.valid and o.status == 200]
    slowest = max((o.seconds for o in valid), default=0.0)
    fives = sum(n for (_, status), n in table.items() if status >= 500 or status == 0)
    print(f"model {model_dir.name}, default flags, {args.clients} hostile clients + {args.canaries} canaries")
    print(f"{len(outcomes)} hostile requests in {elapsed:.0f} s, {len(canary_outcomes)} canary requests")
    for protocol in sorted({p for p, _ in table}):
        counts = ", ".join(f"{status}: {n}" for (p, status), n in sorted(table.items()) if p == protocol)
        print(f"  {protocol:<10} {counts}")
    print(f"valid requests answered 200: {len(valid)}, slowest {slowest:.1f} s (bound {VALID_LATENCY_S:g} s)")
    print(f"5xx or no answer: {fives}; problems: {len(problems)}")
    for line in problems[:10]:
        print(f"  {line}")
    print(
        f"after: process alive {alive}, ready {ready}, serving {serving}, "
        f"traceback in log {log_has_traceback}"
    )
    ratio = rss_after / rss_before
    print(f"RSS before {rss_before / 2**20:.0f} MiB, after {rss_after / 2**20:.0f} MiB, ratio {ratio:.3f}")
    checks = {
        f"at least 2000 hostile requests ({len(outcomes)})": len(outcomes) >= 2000,
        "0 crashes, 0 5xx, 0 problems": alive and fives == 0 and not problems,
        f"0 valid requests slower than {VALID_LATENCY_S:g} s": slowest <= VALID_LATENCY_S,
        "ready and serving afterwards": ready == 200 and serving == 200,
        "RSS within 20% of before": abs(ratio - 1) <= 0.20,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
