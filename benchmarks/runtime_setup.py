"""What both runtime benchmarks share: the model flags, the model folder, and a runtime started on it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

REPO_ROOT = Path(__file__).resolve().parents[1]
# The runtime is started by the tests' own launcher (tests/fixtures/runtime.py), from the repository root.
sys.path.insert(0, str(REPO_ROOT))

if TYPE_CHECKING:
    from tests.fixtures.runtime import RuntimeServer


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


def start_bench_runtime(model_dir: Path, log: Path, *, threads: int, **flags: object) -> RuntimeServer:
    """``python -m diffusers_runtime`` on ``model_dir`` with ``threads`` intra-op threads and no
    per-request latency log lines; ``flags`` are runtime flags without dashes. Waits until ready."""
    from tests.fixtures.runtime import start_runtime

    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return start_runtime(model_dir, log, env=env, enable_latency_logging=False, **flags)
