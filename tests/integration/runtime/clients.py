"""Small request helpers shared by the runtime integration tests."""

from __future__ import annotations

import base64
import io
import struct

import httpx
import orjson
from PIL import Image

from tests.fixtures.runtime import RuntimeServer

FAST = {"num_inference_steps": 2, "height": 64, "width": 64}


def v1_predict(server: RuntimeServer, instances: list[dict], timeout: float = 120.0) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/{server.model_name}:predict",
        json={"instances": instances},
        timeout=timeout,
    )


def v2_infer(server: RuntimeServer, body: dict, timeout: float = 120.0) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{server.model_name}/infer", json=body, timeout=timeout)


def openai_images(server: RuntimeServer, body: dict, timeout: float = 120.0) -> httpx.Response:
    return httpx.post(f"{server.url}/openai/v1/images/generations", json=body, timeout=timeout)


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def v1_image_bytes(response: httpx.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    return [base64.b64decode(p["image"]["b64"]) for p in response.json()["predictions"]]


def bytes_tensor(values: list[bytes]) -> bytes:
    """V2 binary BYTES tensor encoding: 4-byte little-endian length before each element."""
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def binary_prompt_request(
    tensor: bytes, *, declared_size: int | None = None, extra: dict | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a binary-extension V2 request whose one input is the BYTES tensor ``prompt``.

    Args:
        tensor: The encoded prompt tensor appended after the JSON header.
        declared_size: ``binary_data_size`` to declare (default: the real size; differ to send a bad one).
        extra: More top-level header fields (parameters, outputs).
    """
    size = len(tensor) if declared_size is None else declared_size
    prompt = {"name": "prompt", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": size}}
    header = orjson.dumps({"inputs": [prompt], **(extra or {})})
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    return header + tensor, headers


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of samples of ``name`` whose labels include ``labels`` in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric, _, label_text = sample.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total
