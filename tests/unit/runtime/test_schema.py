"""Request schema: defaults, broadcasting, and errors that name the field."""

from __future__ import annotations

import re

import pytest
from diffusers_runtime.schema import (
    MAX_SEED,
    Capabilities,
    Limits,
    V2Tensor,
    parse_openai,
    parse_v1,
    parse_v2,
)
from kserve.errors import InvalidInput

LIMITS = Limits(max_steps=50, max_pixels=512 * 512, max_images_per_request=4)
CAPS = Capabilities(
    default_height=64,
    default_width=64,
    scheduler_names=("default", "euler"),
    default_steps=20,
)


def prompt_tensor(*prompts: str) -> V2Tensor:
    return V2Tensor("prompt", "BYTES", [len(prompts)], list(prompts))


def test_v1_applies_model_defaults() -> None:
    (task,) = parse_v1({"instances": [{"prompt": "a cat", "seed": 3}]}, LIMITS, CAPS)
    key = task.request.key
    assert (key.height, key.width, key.num_inference_steps, key.guidance_scale) == (
        64,
        64,
        20,
        7.5,
    )
    assert (task.request.seed, task.output_format, key.scheduler) == (
        3,
        "PNG",
        "default",
    )


def test_v1_server_chooses_a_seed_when_none_is_given() -> None:
    (task,) = parse_v1({"instances": [{"prompt": "a cat"}]}, LIMITS, CAPS)
    assert 0 <= task.request.seed < 2**32


def test_output_format_is_case_insensitive_with_jpg_alias() -> None:
    tasks = parse_v1(
        {
            "instances": [
                {"prompt": "a", "output_format": "jpg"},
                {"prompt": "b", "output_format": "webp"},
            ]
        },
        LIMITS,
        CAPS,
    )
    assert [t.output_format for t in tasks] == ["JPEG", "WEBP"]


def test_negative_prompt_is_part_of_the_batch_key() -> None:
    with_negative, without = parse_v1(
        {"instances": [{"prompt": "a", "negative_prompt": ""}, {"prompt": "a"}]},
        LIMITS,
        CAPS,
    )
    assert with_negative.request.key != without.request.key


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        ({"prompt": "a", "height": 72, "width": 4096}, "width"),
        ({"prompt": "a", "height": 1024, "width": 1024}, "max_pixels"),
        ({"prompt": "a", "scheduler": "ddim"}, "scheduler"),
        ({"prompt": "a", "guidance_scale": float("inf")}, "guidance_scale"),
        ({"prompt": "a", "num_inference_steps": 51}, "num_inference_steps"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_v1_errors_name_the_field(instance: dict, field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        parse_v1({"instances": [instance]}, LIMITS, CAPS)


def test_negative_prompt_rejected_when_the_pipeline_has_none() -> None:
    caps = Capabilities(default_height=64, default_width=64, supports_negative_prompt=False)
    with pytest.raises(InvalidInput, match="negative_prompt: not supported"):
        parse_v1({"instances": [{"prompt": "a", "negative_prompt": "b"}]}, LIMITS, caps)


def test_v2_broadcasts_one_seed_as_consecutive_seeds_and_one_negative_prompt() -> None:
    tasks = parse_v2(
        [
            prompt_tensor("a", "b", "c"),
            V2Tensor("negative_prompt", "BYTES", [1], ["blurry"]),
            V2Tensor("seed", "INT64", [1], [7]),
        ],
        {"num_inference_steps": 2},
        LIMITS,
        CAPS,
    )
    assert [t.request.seed for t in tasks] == [7, 8, 9]
    assert {t.request.negative_prompt for t in tasks} == {"blurry"}
    assert {t.request.key.num_inference_steps for t in tasks} == {2}


def test_v2_accepts_nested_data_and_binary_decoded_bytes() -> None:
    (task,) = parse_v2([V2Tensor("prompt", "BYTES", [1, 1], [[b"a cat"]])], None, LIMITS, CAPS)
    assert task.request.prompt == "a cat"


def test_v2_ignores_kserve_binary_output_parameter() -> None:
    assert parse_v2([prompt_tensor("a")], {"binary_data_output": True}, LIMITS, CAPS)


@pytest.mark.parametrize(
    ("tensors", "parameters", "field"),
    [
        ([prompt_tensor("a"), V2Tensor("seed", "INT64", [2], [1, 2, 3])], None, "seed"),
        (
            [prompt_tensor("a", "b"), V2Tensor("seed", "INT64", [3], [1, 2, 3])],
            None,
            "seed",
        ),
        (
            [prompt_tensor("a"), V2Tensor("height", "INT32", [2], [64, 64])],
            None,
            "height",
        ),
        ([prompt_tensor("a"), V2Tensor("seed", "BOOL", [1], [True])], None, "seed"),
        (
            [prompt_tensor("a"), V2Tensor("guidance_scale", "FP32", [1], [True])],
            None,
            "guidance_scale",
        ),
        ([prompt_tensor("a"), prompt_tensor("b")], None, "given twice"),
        ([prompt_tensor("a", "b", "c", "d", "e")], None, "max_images_per_request"),
        ([V2Tensor("prompt", "BYTES", [-1], ["a"])], None, "shape"),
        ([prompt_tensor("a")], {"seed": "1"}, "seed"),
    ],
)
def test_v2_errors_name_the_field(tensors: list[V2Tensor], parameters: dict | None, field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        parse_v2(tensors, parameters, LIMITS, CAPS)


def test_openai_size_n_and_seed_extension() -> None:
    body, tasks = parse_openai({"prompt": "a", "n": 2, "size": "128x64", "seed": 4}, LIMITS, CAPS)
    assert body.response_format == "b64_json"
    assert [(t.request.key.width, t.request.key.height, t.request.seed) for t in tasks] == [
        (128, 64, 4),
        (128, 64, 5),
    ]


def test_openai_auto_size_uses_model_default() -> None:
    _, (task,) = parse_openai({"prompt": "a", "size": "auto"}, LIMITS, CAPS)
    assert (task.request.key.width, task.request.key.height) == (64, 64)


def test_openai_seed_range_lets_the_last_image_reach_the_maximum() -> None:
    _, tasks = parse_openai({"prompt": "a", "n": 2, "seed": MAX_SEED - 1}, LIMITS, CAPS)
    assert [t.request.seed for t in tasks] == [MAX_SEED - 1, MAX_SEED]
    with pytest.raises(InvalidInput, match=r"seed: must be between 0 and 2\*\*63-2 for n=2"):
        parse_openai({"prompt": "a", "n": 2, "seed": MAX_SEED}, LIMITS, CAPS)


@pytest.mark.parametrize(
    ("parse", "field"),
    [
        (lambda text: parse_v1({"instances": [{"prompt": text}]}, LIMITS, CAPS), "instances[0].prompt"),
        (
            lambda text: parse_v1({"instances": [{"prompt": "ok", "negative_prompt": text}]}, LIMITS, CAPS),
            "instances[0].negative_prompt",
        ),
        (lambda text: parse_v2([prompt_tensor(text)], None, LIMITS, CAPS), "prompt"),
        (lambda text: parse_openai({"prompt": text}, LIMITS, CAPS), "prompt"),
    ],
)
def test_lone_surrogate_is_refused_naming_the_field(parse, field: str) -> None:
    with pytest.raises(InvalidInput, match=rf"^{re.escape(field)}: not valid text: lone surrogate U\+DC00"):
        parse("a \udc00 b")


def test_request_cost_bound_names_the_limit_and_sums_the_images() -> None:
    limits = Limits(max_request_pixel_steps=2 * 64 * 64 * 10)
    one = {"prompt": "p", "height": 64, "width": 64, "num_inference_steps": 10}
    assert len(parse_v1({"instances": [one, one]}, limits, CAPS)) == 2
    with pytest.raises(InvalidInput, match=r"122880 pixel-steps.*--max_request_pixel_steps=81920"):
        parse_v1({"instances": [one, one, one]}, limits, CAPS)
    with pytest.raises(InvalidInput, match="--max_request_pixel_steps=81920"):
        parse_openai({"prompt": "p", "n": 3, "size": "64x64", "num_inference_steps": 10}, limits, CAPS)
