"""The three protocols on the tiny model: shapes of answers, every input served, the same image everywhere."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.fixtures.runtime import RuntimeServer

from .clients import (
    FAST,
    bytes_tensor,
    decode_png,
    openai_images,
    v1_image_bytes,
    v1_predict,
    v2_infer,
)

pytestmark = pytest.mark.integration


def test_v1_serves_every_instance_with_its_seed(runtime_server: RuntimeServer) -> None:
    instances = [{"prompt": f"a cat {i}", "seed": 10 + i, **FAST} for i in range(3)]
    response = v1_predict(runtime_server, instances)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["seed"] for p in predictions] == [10, 11, 12]
    assert {p["image"]["format"] for p in predictions} == {"PNG"}
    images = [decode_png(base64.b64decode(p["image"]["b64"])) for p in predictions]
    assert all(image.size == (64, 64) and image.format == "PNG" for image in images)
    assert len({image.tobytes() for image in images}) == 3


def test_v1_returns_a_server_chosen_seed_that_reproduces_the_image(
    runtime_server: RuntimeServer,
) -> None:
    first = v1_predict(runtime_server, [{"prompt": "a red house", **FAST}])
    seed = first.json()["predictions"][0]["seed"]
    again = v1_predict(runtime_server, [{"prompt": "a red house", "seed": seed, **FAST}])
    assert v1_image_bytes(first) == v1_image_bytes(again)


def test_v1_jpeg_output_format(runtime_server: RuntimeServer) -> None:
    response = v1_predict(
        runtime_server,
        [{"prompt": "a dog", "seed": 1, "output_format": "jpeg", **FAST}],
    )
    prediction = response.json()["predictions"][0]
    assert prediction["image"]["format"] == "JPEG"
    assert base64.b64decode(prediction["image"]["b64"])[:2] == b"\xff\xd8"


def test_v2_json_request_without_id(runtime_server: RuntimeServer) -> None:
    body = {
        "inputs": [
            {
                "name": "prompt",
                "datatype": "BYTES",
                "shape": [2],
                "data": ["a cat", "a dog"],
            }
        ],
        "parameters": {"seed": 5, **FAST},
    }
    response = v2_infer(runtime_server, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["id"]
    outputs = {o["name"]: o for o in result["outputs"]}
    assert outputs["image"]["datatype"] == "BYTES" and outputs["image"]["shape"] == [2]
    assert outputs["seed"]["data"] == [5, 6]
    assert all(decode_png(base64.b64decode(b)).size == (64, 64) for b in outputs["image"]["data"])


def test_v2_knobs_as_tensors_match_knobs_as_parameters(
    runtime_server: RuntimeServer,
) -> None:
    prompt = {"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["a tree"]}
    as_params = v2_infer(runtime_server, {"inputs": [prompt], "parameters": {"seed": 3, **FAST}})
    as_tensors = v2_infer(
        runtime_server,
        {
            "id": "r1",
            "inputs": [
                prompt,
                {"name": "seed", "datatype": "INT64", "shape": [1], "data": [3]},
                {
                    "name": "num_inference_steps",
                    "datatype": "INT32",
                    "shape": [1],
                    "data": [2],
                },
                {"name": "height", "datatype": "INT32", "shape": [1], "data": [64]},
                {"name": "width", "datatype": "INT32", "shape": [1], "data": [64]},
            ],
        },
    )
    assert as_tensors.json()["id"] == "r1"
    assert as_params.json()["outputs"][0]["data"] == as_tensors.json()["outputs"][0]["data"]


def test_v2_binary_data_extension_in_and_out(runtime_server: RuntimeServer) -> None:
    prompts = [b"a cat", b"a dog"]
    header = {
        "inputs": [
            {
                "name": "prompt",
                "datatype": "BYTES",
                "shape": [2],
                "parameters": {"binary_data_size": 0},
            },
        ],
        "parameters": {"seed": 7, **FAST},
        "outputs": [
            {"name": "image", "parameters": {"binary_data": True}},
            {"name": "seed"},
        ],
    }
    payload = bytes_tensor(prompts)
    header["inputs"][0]["parameters"]["binary_data_size"] = len(payload)
    import orjson

    json_part = orjson.dumps(header)
    response = httpx.post(
        f"{runtime_server.url}/v2/models/{runtime_server.model_name}/infer",
        content=json_part + payload,
        headers={
            "Inference-Header-Content-Length": str(len(json_part)),
            "Content-Type": "application/octet-stream",
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    json_length = int(response.headers["inference-header-content-length"])
    result = orjson.loads(response.content[:json_length])
    outputs = {o["name"]: o for o in result["outputs"]}
    assert outputs["seed"]["data"] == [7, 8]
    raw = response.content[json_length:]
    assert len(raw) == outputs["image"]["parameters"]["binary_data_size"]
    # Length-prefixed PNGs, not base64.
    first_len = int.from_bytes(raw[:4], "little")
    assert raw[4:12] == b"\x89PNG\r\n\x1a\n"
    assert decode_png(raw[4 : 4 + first_len]).size == (64, 64)


def test_v2_model_metadata_describes_inputs_and_outputs(
    runtime_server: RuntimeServer,
) -> None:
    response = httpx.get(f"{runtime_server.url}/v2/models/{runtime_server.model_name}", timeout=10)
    assert response.status_code == 200
    metadata = response.json()
    inputs = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    assert inputs["prompt"] == "BYTES" and inputs["seed"] == "INT64"
    assert {o["name"] for o in metadata["outputs"]} == {"image", "seed"}


def test_openai_images_generations(runtime_server: RuntimeServer) -> None:
    body = {
        "prompt": "a cat",
        "n": 2,
        "size": "64x64",
        "seed": 20,
        "num_inference_steps": 2,
    }
    response = openai_images(runtime_server, {**body, "model": runtime_server.model_name})
    assert response.status_code == 200, response.text
    result = response.json()
    assert isinstance(result["created"], int)
    assert [d["seed"] for d in result["data"]] == [20, 21]
    assert all(decode_png(base64.b64decode(d["b64_json"])).size == (64, 64) for d in result["data"])


def test_same_seed_gives_the_same_image_on_every_protocol(
    runtime_server: RuntimeServer,
) -> None:
    v1 = v1_image_bytes(v1_predict(runtime_server, [{"prompt": "a boat", "seed": 42, **FAST}]))[0]
    v2 = v2_infer(
        runtime_server,
        {
            "inputs": [
                {
                    "name": "prompt",
                    "datatype": "BYTES",
                    "shape": [1],
                    "data": ["a boat"],
                }
            ],
            "parameters": {"seed": 42, **FAST},
        },
    )
    openai = openai_images(
        runtime_server,
        {"prompt": "a boat", "seed": 42, "size": "64x64", "num_inference_steps": 2},
    )
    assert base64.b64decode(v2.json()["outputs"][0]["data"][0]) == v1
    assert base64.b64decode(openai.json()["data"][0]["b64_json"]) == v1


def test_scheduler_choice_changes_the_image_and_is_reproducible(
    runtime_server: RuntimeServer,
) -> None:
    base = {"prompt": "a lake", "seed": 9, **FAST}
    default = v1_image_bytes(v1_predict(runtime_server, [base]))[0]
    euler = v1_image_bytes(v1_predict(runtime_server, [{**base, "scheduler": "euler"}]))[0]
    euler_again = v1_image_bytes(v1_predict(runtime_server, [{**base, "scheduler": "euler"}]))[0]
    assert euler == euler_again
    assert euler != default


def test_v2_over_grpc(runtime_server_factory) -> None:
    import asyncio

    from kserve import InferenceGRPCClient, InferInput, InferRequest

    from tests.support.tools import free_port

    grpc_port = free_port()
    server = runtime_server_factory(enable_grpc=True, grpc_port=grpc_port)

    async def infer() -> object:
        client = InferenceGRPCClient(f"127.0.0.1:{grpc_port}")
        request = InferRequest(
            model_name=server.model_name,
            infer_inputs=[InferInput("prompt", [1], "BYTES", data=["a cat"])],
            request_id="grpc-1",
            parameters={"seed": 3, **FAST},
        )
        return await client.infer(request)

    response = asyncio.run(infer())
    assert response.id == "grpc-1"
    image = response.get_output_by_name("image")
    assert image.datatype == "BYTES" and image.shape == [1]
    assert decode_png(base64.b64decode(image.data[0])).size == (64, 64)
