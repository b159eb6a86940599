"""Family rules without a pipeline: size grid, knob checks, pipeline errors as 400s, default flags."""

from __future__ import annotations

import pytest
from diffusers_runtime.__main__ import parse_args
from diffusers_runtime.engine import request_error
from diffusers_runtime.errors import BadRequestError
from diffusers_runtime.families import FamilyRules, ServingDefaults

SD3 = FamilyRules(
    family="sd3", steps=28, guidance_scale=7.0, height=64, width=64, size_multiple=16, max_side=256
)
SCHNELL = FamilyRules(
    family="flux", steps=4, guidance_scale=0.0, height=64, width=64, size_multiple=16, guidance="none"
)
SD15 = FamilyRules(
    family="sd",
    steps=50,
    guidance_scale=7.5,
    height=512,
    width=512,
    scheduler_names=("default", "pndm"),
    default_scheduler_class="PNDMScheduler",
)


@pytest.mark.parametrize(
    ("height", "width", "field"), [(72, 64, "height"), (64, 272, "width"), (48, 64, "height")]
)
def test_sizes_off_the_grid_or_beyond_the_denoiser_name_the_side(height: int, width: int, field: str) -> None:
    with pytest.raises(BadRequestError, match=f"^{field}: must be a multiple of 16 between 64 and 256"):
        SD3.check_size("", height, width)


def test_a_timestep_distilled_model_refuses_a_guidance_it_would_ignore() -> None:
    knobs = {"steps": 4, "scheduler": "default", "has_negative_prompt": False}
    SCHNELL.check_knobs("", guidance_scale=0.0, guidance_given=True, **knobs)
    with pytest.raises(BadRequestError, match=r"^guidance_scale: "):
        SCHNELL.check_knobs("", guidance_scale=3.5, guidance_given=True, **knobs)


def test_pndm_needs_four_steps_also_as_the_default_scheduler() -> None:
    with pytest.raises(BadRequestError, match=r"^num_inference_steps: the PNDM scheduler needs at least 4"):
        SD15.check_knobs(
            "",
            steps=2,
            guidance_scale=7.5,
            guidance_given=False,
            scheduler="default",
            has_negative_prompt=False,
        )


def test_a_pipeline_value_error_becomes_a_400_naming_the_field() -> None:
    err = request_error(ValueError("`height` and `width` have to be divisible by 16 but are 72 and 64."))
    assert isinstance(err, BadRequestError) and str(err).startswith("height: ")
    assert str(request_error(ValueError("something odd"))).startswith("request: ")


def test_serving_default_flags_parse_and_empty_means_the_model() -> None:
    args = parse_args(
        ["--model_dir", "/m", "--default_steps", "1", "--default_guidance", "0", "--default_size", "512x768"]
    )
    assert (args.default_steps, args.default_guidance, args.default_size) == (1, 0.0, (512, 768))
    empty = parse_args(["--model_dir", "/m", "--default_steps", "", "--default_size", ""])
    assert (empty.default_steps, empty.default_size) == (None, None)


@pytest.mark.parametrize(
    ("flag", "value"), [("--default_steps", "0"), ("--default_guidance", "31"), ("--default_size", "big")]
)
def test_bad_serving_default_flags_are_usage_errors(flag: str, value: str) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--model_dir", "/m", flag, value])
    assert info.value.code == 2


def test_explicit_defaults_fill_only_what_they_set() -> None:
    chosen = ServingDefaults(steps=2).over(ServingDefaults(28, 3.5, 1024, 1024))
    assert chosen == ServingDefaults(2, 3.5, 1024, 1024)
