"""Every text-to-image family served as its authors intend: defaults, exact sizes, family rules, seeds.

One runtime per family (a parametrized module fixture starts them one after another) on its tiny build.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from tests.fixtures.models import FamilyModels
from tests.fixtures.runtime import RuntimeServer, start_runtime

from .clients import bytes_tensor, decode_png, openai_images, v1_image_bytes, v1_predict, v2_infer

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Family:
    """What the model's authors intend (model cards, pipeline defaults), written down independently."""

    kind: str
    steps: int
    guidance: float
    size_multiple: int
    flags: tuple[tuple[str, str], ...] = ()
    default_size: str = "64x64"
    negative_prompt: bool = True
    max_side: int = 4096


FAMILIES = [
    Family("tiny-sdxl", 50, 5.0, 8),
    Family("tiny-sd3", 28, 7.0, 16, max_side=256),
    # Flux's own default is 1024x1024 (a tiny transformer still attends over 4096 tokens): served at 64x64
    # through the explicit serving default, which the metadata must then report.
    Family("tiny-flux", 28, 3.5, 16, flags=(("default_size", "64x64"),), negative_prompt=False),
    Family("tiny-flux-schnell", 4, 0.0, 16, flags=(("default_size", "64x64"),), negative_prompt=False),
    Family("tiny-sd2v", 50, 7.5, 8),
    Family("tiny-turbo", 1, 0.0, 8),
    Family("tiny-pixart", 20, 4.5, 16),
    Family("tiny-sana", 20, 4.5, 32),
]


@pytest.fixture(scope="module", params=FAMILIES, ids=[f.kind for f in FAMILIES])
def served(
    request: pytest.FixtureRequest, family_models: FamilyModels, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Family, RuntimeServer]]:
    family: Family = request.param
    log_path = tmp_path_factory.mktemp("family-runtime") / f"{family.kind}.log"
    server = start_runtime(
        family_models(family.kind),
        log_path,
        model_name=family.kind,
        max_batch_size=2,
        max_batch_delay_ms=200,
        **dict(family.flags),
    )
    try:
        yield family, server
    finally:
        server.stop()


def _metadata(server: RuntimeServer) -> dict:
    response = httpx.get(f"{server.url}/v2/models/{server.model_name}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["parameters"]


def _fast(family: Family, **extra: object) -> dict:
    return {"num_inference_steps": 2, "height": 64, "width": 128, **extra}


def test_metadata_reports_the_models_own_defaults(served: tuple[Family, RuntimeServer]) -> None:
    family, server = served
    params = _metadata(server)
    assert (params["default_steps"], params["default_guidance"]) == (family.steps, family.guidance)
    assert params["default_size"] == family.default_size
    assert params["size_multiple"] == family.size_multiple
    assert params["negative_prompt"] is family.negative_prompt
    models = httpx.get(f"{server.url}/openai/v1/models/{server.model_name}", timeout=30).json()
    assert models["serving_defaults"] == params


def test_request_without_settings_uses_the_defaults_alone_and_batched(
    served: tuple[Family, RuntimeServer],
) -> None:
    _, server = served
    params = _metadata(server)
    width, height = (int(v) for v in params["default_size"].split("x"))
    explicit = {
        "num_inference_steps": params["default_steps"],
        "guidance_scale": params["default_guidance"],
        "height": height,
        "width": width,
    }
    batched = v1_image_bytes(
        v1_predict(server, [{"prompt": "a red cat", "seed": 5}, {"prompt": "a blue dog", "seed": 6}])
    )
    alone = v1_image_bytes(v1_predict(server, [{"prompt": "a red cat", "seed": 5, **explicit}]))
    assert decode_png(batched[0]).size == (width, height)
    assert batched[0] == alone[0], "same seed, same settings: same bytes alone and in a batch"
    assert batched[0] != batched[1]


def test_every_protocol_serves_exactly_the_requested_size(served: tuple[Family, RuntimeServer]) -> None:
    family, server = served
    v1 = v1_image_bytes(v1_predict(server, [{"prompt": "a cat", "seed": 3, **_fast(family)}]))[0]
    v2 = v2_infer(
        server,
        {
            "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["a cat"]}],
            "parameters": {"seed": 3, **_fast(family)},
        },
    )
    assert v2.status_code == 200, v2.text
    v2_image = base64.b64decode(next(o for o in v2.json()["outputs"] if o["name"] == "image")["data"][0])
    payload = bytes_tensor([b"a cat"])
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "prompt",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(payload)},
                }
            ],
            "parameters": {"seed": 3, **_fast(family)},
            "outputs": [{"name": "image", "parameters": {"binary_data": True}}],
        }
    )
    binary = httpx.post(
        f"{server.url}/v2/models/{server.model_name}/infer",
        content=header + payload,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
        timeout=120,
    )
    assert binary.status_code == 200, binary.text
    raw = binary.content[int(binary.headers["inference-header-content-length"]) :]
    binary_image = raw[4 : 4 + int.from_bytes(raw[:4], "little")]
    openai = openai_images(server, {"prompt": "a cat", "seed": 3, "size": "128x64", "num_inference_steps": 2})
    assert openai.status_code == 200, openai.text
    openai_image = base64.b64decode(openai.json()["data"][0]["b64_json"])
    for image in (v1, v2_image, binary_image, openai_image):
        assert decode_png(image).size == (128, 64)
    assert v1 == v2_image == binary_image == openai_image


def test_every_offered_scheduler_generates(served: tuple[Family, RuntimeServer]) -> None:
    family, server = served
    for scheduler in _metadata(server)["schedulers"]:
        steps = 4 if scheduler == "pndm" else 2
        response = v1_predict(
            server,
            [
                {
                    "prompt": "a cat",
                    "seed": 1,
                    "scheduler": scheduler,
                    **_fast(family, num_inference_steps=steps),
                }
            ],
        )
        assert response.status_code == 200, f"{scheduler}: {response.text}"


def _rejected(server: RuntimeServer, instance: dict, field: str) -> str:
    response = v1_predict(server, [{"prompt": "a cat", **instance}])
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert message.startswith(f"instances[0].{field}:"), message
    return message


def test_sizes_off_the_family_grid_are_400s(served: tuple[Family, RuntimeServer]) -> None:
    family, server = served
    off_grid = 64 + family.size_multiple // 2
    assert str(family.size_multiple) in _rejected(server, {"height": off_grid, "width": 64}, "height")
    _rejected(server, {"height": 64, "width": off_grid}, "width")
    response = openai_images(server, {"prompt": "a cat", "size": f"{off_grid}x64"})
    assert response.status_code == 400 and response.json()["error"].startswith("width:"), response.text
    if family.max_side < 4096:
        _rejected(server, {"height": family.max_side + family.size_multiple, "width": 64}, "height")


def test_family_knobs_out_of_range_are_400s(served: tuple[Family, RuntimeServer]) -> None:
    family, server = served
    _rejected(server, {"num_inference_steps": 101}, "num_inference_steps")
    _rejected(server, {"guidance_scale": 31.0}, "guidance_scale")
    if not family.negative_prompt:
        assert "true_cfg_scale" in _rejected(server, {"negative_prompt": "blurry"}, "negative_prompt")
    if family.kind == "tiny-flux-schnell":
        _rejected(server, {"guidance_scale": 3.5}, "guidance_scale")
    if "pndm" in _metadata(server)["schedulers"]:
        _rejected(server, {"scheduler": "pndm", "num_inference_steps": 2}, "num_inference_steps")


def test_prompts_longer_than_the_text_encoder_reads_are_400s(served: tuple[Family, RuntimeServer]) -> None:
    _, server = served
    limit = _metadata(server)["max_prompt_tokens"]
    message = _rejected(server, {"prompt": "a " * (limit + 10)}, "prompt")
    assert str(limit) in message


def test_flux_reports_its_own_1024_default_without_the_flag(
    family_models: FamilyModels, tmp_path: Path
) -> None:
    from diffusers_runtime.engine import PipelineOptions, load_pipeline

    loaded = load_pipeline(family_models("tiny-flux"), PipelineOptions(device="cpu"))
    assert loaded.rules is not None
    assert (loaded.rules.width, loaded.rules.height) == (1024, 1024)
