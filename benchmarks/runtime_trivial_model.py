"""A trivial kserve.Model: KServe's own per-request floor, to measure the runtime's overhead against.

It answers V1, V2 (JSON and the binary extension) and the OpenAI images route with a constant tiny answer,
with no validation, queue or worker thread. Everything else is the diffusers runtime's server setup, built
by the runtime's own ``build_model_server`` (same kserve ModelServer arguments, one worker, same logging),
and the extra route added the same way, so the difference between the two is the runtime's request path.

    .venv/bin/python benchmarks/runtime_trivial_model.py --model_name trivial --http_port 8080 \\
        --enable_grpc false --enable_latency_logging false
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from diffusers_runtime.__main__ import build_model_server
from diffusers_runtime.model import OPENAI_IMAGES_ROUTE
from fastapi import Request
from kserve import InferOutput, InferRequest, InferResponse, Model, model_server

IMAGE = b"tiny"
IMAGE_B64 = "dGlueQ=="


class TrivialModel(Model):
    """Constant answers in the runtime's response shapes.

    With ``cpu_work_ms`` > 0 it is the benchmark's control: each request first spends that long in CPU-bound
    torch work on a worker thread (as a pipeline call would), timed into ``diffusers_batch_seconds`` like
    the runtime's, so "overhead beyond the work" reads the same way for both.
    """

    def __init__(self, name: str, cpu_work_ms: float = 0.0) -> None:
        super().__init__(name)
        self.cpu_work_ms = cpu_work_ms
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="work")
        self._work_seconds: Any = None
        if cpu_work_ms > 0:
            import torch
            from diffusers_runtime.metrics import BATCH_SECONDS

            self._matrix = torch.randn(384, 384)
            # The runtime's own histogram (same name, same reading by the benchmark), under this model's name.
            self._work_seconds = BATCH_SECONDS.labels(model_name=name)

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def _work(self) -> None:
        import torch

        started = time.perf_counter()
        x = self._matrix
        while (time.perf_counter() - started) * 1000 < self.cpu_work_ms:
            x = torch.tanh(x @ self._matrix)
        self._work_seconds.observe(time.perf_counter() - started)

    async def _maybe_work(self) -> None:
        if self.cpu_work_ms > 0:
            await asyncio.get_running_loop().run_in_executor(self._worker, self._work)

    async def predict(
        self, payload: Any, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        await self._maybe_work()
        if isinstance(payload, InferRequest):
            binary = bool(payload.use_binary_outputs) or any(
                o.name == "image" and o.binary_data for o in payload.request_outputs or []
            )
            outputs = [
                InferOutput("image", [1], "BYTES", data=[IMAGE if binary else IMAGE_B64]),
                InferOutput("seed", [1], "INT64", data=[1]),
            ]
            return InferResponse(
                response_id=payload.id or str(uuid.uuid4()),
                model_name=self.name,
                infer_outputs=outputs,
                use_binary_outputs=payload.use_binary_outputs,
                requested_outputs=payload.request_outputs,
            )
        return {"predictions": [{"image": {"b64": IMAGE_B64, "format": "PNG"}, "seed": 1}]}

    async def openai_images(self, request: Request) -> dict[str, Any]:
        orjson.loads(await request.body())
        await self._maybe_work()
        return {"created": 0, "data": [{"b64_json": IMAGE_B64, "seed": 1}]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, parents=[model_server.parser])
    parser.add_argument(
        "--cpu_work_ms", type=float, default=0.0, help="CPU work per request on a worker thread (control)"
    )
    args = parser.parse_args(argv)
    model = TrivialModel(args.model_name, cpu_work_ms=args.cpu_work_ms)
    model.load()
    server = build_model_server(args, __name__)
    model_server.app.add_api_route(
        OPENAI_IMAGES_ROUTE, model.openai_images, methods=["POST"], response_model=None
    )
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
