"""What the runtime benchmarks share: the model flags, the model folder, and servers started on 127.0.0.1.

Servers are started through modelpipe's process helpers (the one home for Popen, logs and ports), never
through the tests' fixtures: a benchmark runs from a checkout without the test suite on its path.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from modelpipe.processes import ChildProcess, free_port, start_process
from modelpipe.targets.local_process import flag_args, model_ready, runtime_command

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
READY_TIMEOUT_S = 180.0
# One intra-op thread and no tokenizer pool unless asked: on a shared 2-core host, OpenMP spinning in the
# server would be measured as overhead.
SERVER_ENV = {"TOKENIZERS_PARALLELISM": "false"}


@dataclass
class BenchServer:
    """A server this benchmark started: ``url`` (http://127.0.0.1:PORT), served ``model_name``, its log."""

    url: str
    model_name: str
    child: ChildProcess

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.child.popen

    @property
    def ready_url(self) -> str:
        return f"{self.url}/v2/models/{self.model_name}/ready"

    def log(self) -> str:
        return self.child.output()

    def stop(self) -> None:
        self.child.stop(timeout=20.0)


def model_parser(description: str | None, *, steps: int) -> argparse.ArgumentParser:
    """A parser with ``--model-dir``, ``--size``, ``--steps`` (default ``steps``) and ``--threads``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model-dir", type=Path, help="diffusers pipeline folder (default: a tiny random one)"
    )
    parser.add_argument("--size", type=int, default=64, help="image width and height (default 64)")
    parser.add_argument("--steps", type=int, default=steps, help=f"denoising steps (default {steps})")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads, in the runtime and here (default 1)"
    )
    return parser


def model_dir_or_tiny(model_dir: Path | None, tmp: Path) -> Path:
    """``model_dir``, or a tiny random-weight pipeline written under ``tmp``."""
    if model_dir is not None:
        return model_dir
    from modelpipe.demo_models import write_tiny_sd

    return write_tiny_sd(tmp / "tiny-sd")


def start_server(
    command: list[str],
    log: Path,
    *,
    model_name: str,
    port: int,
    threads: int,
    timeout: float = READY_TIMEOUT_S,
) -> BenchServer:
    """Start ``command`` (which serves ``model_name`` on ``port``) and wait until the model is ready.

    Raises:
        RuntimeError: The server exited or did not get ready in time (its log tail is in the message).
    """
    env = {**os.environ, **SERVER_ENV, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.pop("STORAGE_URI", None)
    log.parent.mkdir(parents=True, exist_ok=True)
    child = start_process(command, log_path=log, env=env, cwd=REPO_ROOT)
    server = BenchServer(f"http://127.0.0.1:{port}", model_name, child)
    outcome = child.wait_ready(lambda: model_ready(server.url, model_name), timeout=timeout, poll_seconds=0.2)
    if outcome != "ready":
        server.stop()
        raise RuntimeError(f"{command[2]} {outcome} before its model was ready:\n{child.tail(40)}")
    return server


def start_bench_runtime(model_dir: Path, log: Path, *, threads: int, **flags: object) -> BenchServer:
    """``python -m diffusers_runtime`` on ``model_dir`` with ``threads`` intra-op threads, gRPC off and no
    per-request latency log lines; ``flags`` are runtime flags without dashes. Waits until ready."""
    port = free_port()
    flags = {"enable_latency_logging": False, **flags}
    command = runtime_command("tiny-sd", port, flag_args(flags), sys.executable, model_dir=model_dir)
    return start_server(command, log, model_name="tiny-sd", port=port, threads=threads)


def start_trivial_model(log: Path, *, threads: int, **flags: object) -> BenchServer:
    """``benchmarks/runtime_trivial_model.py``: a constant-answer kserve.Model with the runtime's kserve
    settings (gRPC off, no per-request latency lines, one worker); ``flags`` as for the runtime."""
    port = free_port()
    name = str(flags.pop("model_name", "trivial"))
    flags = {"enable_grpc": False, "enable_latency_logging": False, **flags}
    script = str(BENCHMARKS / "runtime_trivial_model.py")
    command = [sys.executable, script, "--model_name", name, "--http_port", str(port), *flag_args(flags)]
    return start_server(command, log, model_name=name, port=port, threads=threads)
