"""Client mistakes get a 4xx naming the problem, never a 500, and the server stays ready."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.fixtures.runtime import RuntimeServer

from .clients import FAST, binary_prompt_request, bytes_tensor

pytestmark = pytest.mark.integration

OK = {"prompt": "a cat", **FAST}
PROMPT = {"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["a cat"]}

# (route, body (dict, or raw bytes), text the error must contain)
V1_CASES = {
    "v1-no-instances": ({}, "instances"),
    "v1-empty-instances": ({"instances": []}, "instances"),
    "v1-instances-not-a-list": ({"instances": "a cat"}, "instances"),
    "v1-instance-not-an-object": ({"instances": ["a cat"]}, "instances[0]"),
    "v1-unknown-top-level-field": ({"instances": [OK], "extra": 1}, "extra"),
    "v1-too-many-instances": ({"instances": [OK] * 5}, "instances"),
    "v1-missing-prompt": ({"instances": [{"seed": 1}]}, "prompt"),
    "v1-empty-prompt": ({"instances": [{**OK, "prompt": ""}]}, "prompt"),
    "v1-blank-prompt": ({"instances": [{**OK, "prompt": "   "}]}, "prompt"),
    "v1-prompt-not-a-string": ({"instances": [{**OK, "prompt": 5}]}, "prompt"),
    "v1-prompt-too-long": ({"instances": [{**OK, "prompt": "a" * 3000}]}, "prompt"),
    "v1-negative-prompt-not-a-string": (
        {"instances": [{**OK, "negative_prompt": ["x"]}]},
        "negative_prompt",
    ),
    "v1-unknown-field": ({"instances": [{**OK, "colour": "red"}]}, "colour"),
    "v1-height-not-multiple-of-8": ({"instances": [{**OK, "height": 65}]}, "height"),
    "v1-width-too-small": ({"instances": [{**OK, "width": 32}]}, "width"),
    "v1-over-pixel-limit": (
        {"instances": [{**OK, "height": 2048, "width": 2048}]},
        "max_pixels",
    ),
    "v1-steps-zero": (
        {"instances": [{**OK, "num_inference_steps": 0}]},
        "num_inference_steps",
    ),
    "v1-steps-over-limit": (
        {"instances": [{**OK, "num_inference_steps": 1000}]},
        "num_inference_steps",
    ),
    "v1-steps-as-string": (
        {"instances": [{**OK, "num_inference_steps": "2"}]},
        "num_inference_steps",
    ),
    "v1-steps-fractional": (
        {"instances": [{**OK, "num_inference_steps": 2.5}]},
        "num_inference_steps",
    ),
    "v1-guidance-negative": (
        {"instances": [{**OK, "guidance_scale": -1}]},
        "guidance_scale",
    ),
    "v1-guidance-too-large": (
        {"instances": [{**OK, "guidance_scale": 100}]},
        "guidance_scale",
    ),
    "v1-seed-negative": ({"instances": [{**OK, "seed": -1}]}, "seed"),
    "v1-seed-too-large": ({"instances": [{**OK, "seed": 2**63}]}, "seed"),
    "v1-seed-string": ({"instances": [{**OK, "seed": "abc"}]}, "seed"),
    "v1-seed-boolean": ({"instances": [{**OK, "seed": True}]}, "seed"),
    "v1-unknown-scheduler": ({"instances": [{**OK, "scheduler": "warp"}]}, "scheduler"),
    "v1-unknown-output-format": (
        {"instances": [{**OK, "output_format": "gif"}]},
        "output_format",
    ),
    "v1-malformed-json": (b'{"instances": [', "request format"),
    "v1-body-is-an-array": ([OK], "body"),
}
V2_CASES = {
    "v2-missing-prompt": (
        {"inputs": [{"name": "seed", "datatype": "INT64", "shape": [1], "data": [1]}]},
        "prompt",
    ),
    "v2-prompt-wrong-datatype": (
        {"inputs": [{**PROMPT, "datatype": "INT32", "data": [1]}]},
        "prompt",
    ),
    "v2-shape-mismatch": ({"inputs": [{**PROMPT, "shape": [2]}]}, "prompt"),
    "v2-prompt-element-not-a-string": ({"inputs": [{**PROMPT, "data": [5]}]}, "prompt"),
    "v2-unknown-input": ({"inputs": [PROMPT, {**PROMPT, "name": "style"}]}, "style"),
    "v2-unknown-parameter": (
        {"inputs": [PROMPT], "parameters": {"strength": 1}},
        "strength",
    ),
    "v2-seed-float-tensor": (
        {
            "inputs": [
                PROMPT,
                {"name": "seed", "datatype": "FP32", "shape": [1], "data": [1.5]},
            ]
        },
        "seed",
    ),
    "v2-knob-twice": (
        {
            "inputs": [
                PROMPT,
                {
                    "name": "num_inference_steps",
                    "datatype": "INT32",
                    "shape": [1],
                    "data": [2],
                },
            ],
            "parameters": {"num_inference_steps": 2},
        },
        "num_inference_steps",
    ),
    "v2-steps-parameter-out-of-range": (
        {"inputs": [PROMPT], "parameters": {"num_inference_steps": 0}},
        "steps",
    ),
    "v2-unknown-output": ({"inputs": [PROMPT], "outputs": [{"name": "mask"}]}, "mask"),
    "v2-inputs-not-a-list": ({"inputs": "a cat"}, "inputs"),
    "v2-malformed-json": (b'{"inputs": [', "JSON decode error"),
}
OPENAI_CASES = {
    "openai-missing-prompt": ({"n": 1}, "prompt"),
    "openai-bad-size": ({"prompt": "a cat", "size": "64"}, "size"),
    "openai-size-not-multiple-of-8": ({"prompt": "a cat", "size": "65x64"}, "width"),
    "openai-n-zero": ({"prompt": "a cat", "n": 0}, "n"),
    "openai-n-too-many": ({"prompt": "a cat", "n": 10}, "n"),
    "openai-url-response-format": (
        {"prompt": "a cat", "response_format": "url"},
        "response_format",
    ),
    "openai-unknown-field": ({"prompt": "a cat", "quality": "hd"}, "quality"),
    "openai-other-model": ({"prompt": "a cat", "model": "dall-e-3"}, "dall-e-3"),
    "openai-malformed-json": (b"{prompt", "JSON"),
}
CASES = {
    **{k: ("v1", *v) for k, v in V1_CASES.items()},
    **{k: ("v2", *v) for k, v in V2_CASES.items()},
    **{k: ("openai", *v) for k, v in OPENAI_CASES.items()},
}


def _post(server: RuntimeServer, route: str, body: object) -> httpx.Response:
    url = {
        "v1": f"{server.url}/v1/models/{server.model_name}:predict",
        "v2": f"{server.url}/v2/models/{server.model_name}/infer",
        "openai": f"{server.url}/openai/v1/images/generations",
    }[route]
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(url, content=content, headers={"Content-Type": "application/json"}, timeout=60)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_4xx_naming_the_problem(runtime_server: RuntimeServer, case: str) -> None:
    route, body, expected = CASES[case]
    response = _post(runtime_server, route, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert expected in response.text
    assert httpx.get(runtime_server.ready_url, timeout=10).status_code == 200


HEADER_ONLY = orjson.dumps({"parameters": {}})
# (body, headers, text the error must contain) of malformed binary-extension V2 requests.
BINARY_CASES = {
    "no-header-length": (
        b"\x00\x01garbage",
        {"Content-Type": "application/octet-stream"},
        "inference-header-content-length",
    ),
    "non-utf8-prompt": (*binary_prompt_request(bytes_tensor([b"\xff\xfe"])), "UTF-8"),
    "truncated-tensor": (
        *binary_prompt_request(b"\x20\x00\x00\x00abc", declared_size=40),
        "malformed V2 binary request",
    ),
    "header-without-inputs": (
        HEADER_ONLY,
        {
            "Inference-Header-Content-Length": str(len(HEADER_ONLY)),
            "Content-Type": "application/octet-stream",
        },
        "inputs",
    ),
}


@pytest.mark.parametrize("case", list(BINARY_CASES))
def test_malformed_binary_v2_is_a_400_naming_the_problem(runtime_server: RuntimeServer, case: str) -> None:
    body, headers, expected = BINARY_CASES[case]
    response = httpx.post(
        f"{runtime_server.url}/v2/models/{runtime_server.model_name}/infer",
        content=body,
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert expected.lower() in response.text.lower()


def test_server_still_generates_after_all_bad_inputs(
    runtime_server: RuntimeServer,
) -> None:
    response = httpx.post(
        f"{runtime_server.url}/v1/models/{runtime_server.model_name}:predict",
        json={"instances": [{**OK, "seed": 1}]},
        timeout=120,
    )
    assert response.status_code == 200
