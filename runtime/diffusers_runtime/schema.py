"""Request rules and limits for all three protocols; every error names the offending field."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from .engine import DEFAULT_SCHEDULER, BatchKey, ImageRequest
from .errors import BadRequestError
from .families import MAX_SIDE, MIN_SIDE, FamilyRules

OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP")
FORMAT_ALIASES = {"JPG": "JPEG"}
MAX_PROMPT_CHARS = 2000
MAX_GUIDANCE = 30.0
MAX_SEED = 2**63 - 1
SERVER_SEED_BOUND = 2**32
_SIZE_RE = re.compile(r"^(\d{1,5})x(\d{1,5})$")


@dataclass(frozen=True)
class Limits:
    """Server-side limits set by flags."""

    max_steps: int = 100
    max_pixels: int = 1024 * 1024
    max_images_per_request: int = 4
    # width x height x steps summed over a request's images; None: no bound beyond the ones above.
    max_request_pixel_steps: int | None = None


@dataclass(frozen=True)
class Capabilities:
    """What the loaded pipeline offers: defaults and the choices a request may make."""

    default_height: int
    default_width: int
    scheduler_names: tuple[str, ...] = (DEFAULT_SCHEDULER,)
    supports_negative_prompt: bool = True
    default_steps: int = 30
    default_guidance: float = 7.5
    rules: FamilyRules | None = None


@dataclass(frozen=True)
class ImageTask:
    """One validated image: what the engine generates and how the response encodes it."""

    request: ImageRequest
    output_format: str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ImageFields(_Strict):
    """Fields of a V1 instance; V2 tensors/parameters and OpenAI bodies are mapped onto it."""

    prompt: str
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    seed: int | None = None
    scheduler: str | None = None
    output_format: str | None = None


class OpenAIImageBody(_Strict):
    """``POST /openai/v1/images/generations`` body: OpenAI's fields plus our generation extensions."""

    prompt: str
    model: str | None = None
    n: int = 1
    size: str | None = None
    response_format: str = "b64_json"
    user: str | None = None
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    scheduler: str | None = None
    output_format: str | None = None


def _validate(model: type[_Strict], value: Any, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise BadRequestError(
            f"{where.rstrip('.') or 'body'}: expected a JSON object, got {_type_name(value)}"
        )
    try:
        return model.model_validate(dict(value))
    except ValidationError as err:
        raise BadRequestError(_describe(err, where, model)) from None


def _describe(err: ValidationError, where: str, model: type[_Strict]) -> str:
    messages = []
    for item in err.errors()[:3]:
        field = where + ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            messages.append(f"{field}: unknown field (allowed: {', '.join(model.model_fields)})")
        elif item["type"] == "missing":
            messages.append(f"{field}: required field is missing")
        else:
            messages.append(f"{field}: {item['msg']} (got {_type_name(item.get('input'))})")
    return "; ".join(messages)


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def resolve_image(fields: ImageFields, where: str, limits: Limits, caps: Capabilities) -> ImageTask:
    """Apply defaults and range checks to one image's fields.

    Raises:
        BadRequestError: A value is empty, out of range or not offered by this model; the message names it.
    """
    check_text(fields.prompt, f"{where}prompt")
    if not fields.prompt.strip():
        raise BadRequestError(f"{where}prompt: must not be empty")
    if len(fields.prompt) > MAX_PROMPT_CHARS:
        raise BadRequestError(f"{where}prompt: longer than {MAX_PROMPT_CHARS} characters")
    if fields.negative_prompt is not None:
        check_text(fields.negative_prompt, f"{where}negative_prompt")
        if not caps.supports_negative_prompt:
            why = caps.rules.negative_prompt if caps.rules is not None else None
            raise BadRequestError(f"{where}negative_prompt: {why or 'not supported by this model pipeline'}")
        if len(fields.negative_prompt) > MAX_PROMPT_CHARS:
            raise BadRequestError(f"{where}negative_prompt: longer than {MAX_PROMPT_CHARS} characters")
    steps = caps.default_steps if fields.num_inference_steps is None else fields.num_inference_steps
    if not 1 <= steps <= limits.max_steps:
        raise BadRequestError(
            f"{where}num_inference_steps: must be between 1 and {limits.max_steps}, got {steps}"
        )
    guidance = caps.default_guidance if fields.guidance_scale is None else fields.guidance_scale
    if not 0.0 <= guidance <= MAX_GUIDANCE:
        raise BadRequestError(
            f"{where}guidance_scale: must be between 0 and {MAX_GUIDANCE:g}, got {guidance:g}"
        )
    height = caps.default_height if fields.height is None else fields.height
    width = caps.default_width if fields.width is None else fields.width
    if caps.rules is not None:
        caps.rules.check_size(where, height, width)
    else:
        for name, side in (("height", height), ("width", width)):
            if side % 8 or not MIN_SIDE <= side <= MAX_SIDE:
                raise BadRequestError(
                    f"{where}{name}: must be a multiple of 8 between {MIN_SIDE} and {MAX_SIDE}, got {side}"
                )
    if height * width > limits.max_pixels:
        raise BadRequestError(
            f"{where}height x width: {width}x{height} = {width * height} pixels exceeds "
            f"--max_pixels={limits.max_pixels}"
        )
    seed = secrets.randbelow(SERVER_SEED_BOUND) if fields.seed is None else fields.seed
    if not 0 <= seed <= MAX_SEED:
        raise BadRequestError(f"{where}seed: must be between 0 and 2**63-1, got {seed}")
    scheduler = fields.scheduler if fields.scheduler is not None else DEFAULT_SCHEDULER
    if scheduler not in caps.scheduler_names:
        raise BadRequestError(
            f"{where}scheduler: unknown scheduler {scheduler!r} "
            f"(this model offers: {', '.join(caps.scheduler_names)})"
        )
    if caps.rules is not None:
        caps.rules.check_knobs(
            where,
            steps=steps,
            guidance_scale=float(guidance),
            guidance_given=fields.guidance_scale is not None,
            scheduler=scheduler,
            has_negative_prompt=fields.negative_prompt is not None,
        )
        caps.rules.check_prompt(f"{where}prompt", fields.prompt)
        if fields.negative_prompt:
            caps.rules.check_prompt(f"{where}negative_prompt", fields.negative_prompt)
    key = BatchKey(
        height=height,
        width=width,
        num_inference_steps=steps,
        guidance_scale=float(guidance),
        scheduler=scheduler,
        has_negative_prompt=fields.negative_prompt is not None,
    )
    request = ImageRequest(prompt=fields.prompt, seed=seed, key=key, negative_prompt=fields.negative_prompt)
    return ImageTask(
        request=request, output_format=parse_output_format(fields.output_format, f"{where}output_format")
    )


def check_text(value: str, field: str) -> None:
    """Refuse a string that is not encodable text before it is queued.

    JSON allows escapes of lone UTF-16 surrogates (``"\\udc00"``) and Python's parser keeps them; the
    tokenizer then raises inside the pipeline call, failing every request batched with this one.

    Raises:
        BadRequestError: ``value`` holds a lone surrogate; the message names ``field`` and the position.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(value[err.start])
        raise BadRequestError(
            f"{field}: not valid text: lone surrogate U+{code:04X} at character {err.start}"
        ) from None


def check_cost(tasks: list[ImageTask], limits: Limits) -> None:
    """Refuse a request whose images together exceed ``--max_request_pixel_steps``.

    Raises:
        BadRequestError: The message gives the request's pixel-steps and the limit.
    """
    limit = limits.max_request_pixel_steps
    cost = sum(task.request.key.pixel_steps for task in tasks)
    if limit is not None and cost > limit:
        raise BadRequestError(
            f"request: {len(tasks)} image(s) cost {cost} pixel-steps (width x height x steps, summed), "
            f"more than --max_request_pixel_steps={limit}; ask for fewer or smaller images or fewer steps"
        )


def parse_output_format(value: str | None, field: str) -> str:
    if value is None:
        return "PNG"
    name = value.upper()
    name = FORMAT_ALIASES.get(name, name)
    if name not in OUTPUT_FORMATS:
        raise BadRequestError(f"{field}: unknown format {value!r} (use one of {', '.join(OUTPUT_FORMATS)})")
    return name


def _check_count(count: int, field: str, limits: Limits) -> None:
    if count < 1:
        raise BadRequestError(f"{field}: at least one image is required")
    if count > limits.max_images_per_request:
        raise BadRequestError(
            f"{field}: {count} images requested, --max_images_per_request is {limits.max_images_per_request}"
        )


def parse_v1(body: Any, limits: Limits, caps: Capabilities) -> list[ImageTask]:
    """``{"instances": [ImageFields, ...]}`` -> one task per instance."""
    if not isinstance(body, Mapping):
        raise BadRequestError(f'body: expected a JSON object with "instances", got {_type_name(body)}')
    unknown = sorted(set(body) - {"instances"})
    if unknown:
        raise BadRequestError(f'{unknown[0]}: unknown top-level field (only "instances" is accepted)')
    instances = body.get("instances")
    if not isinstance(instances, list):
        raise BadRequestError(
            f"instances: required, must be an array of objects, got {_type_name(instances)}"
        )
    _check_count(len(instances), "instances", limits)
    tasks = []
    for i, instance in enumerate(instances):
        where = f"instances[{i}]."
        tasks.append(resolve_image(_validate(ImageFields, instance, where), where, limits, caps))
    check_cost(tasks, limits)
    return tasks


def parse_openai(body: Any, limits: Limits, caps: Capabilities) -> tuple[OpenAIImageBody, list[ImageTask]]:
    """OpenAI images body -> n tasks; image i gets ``seed + i`` when a seed is given."""
    request = _validate(OpenAIImageBody, body, "")
    if request.response_format != "b64_json":
        raise BadRequestError(
            f"response_format: only 'b64_json' is supported, got {request.response_format!r}"
        )
    _check_count(request.n, "n", limits)
    height, width = caps.default_height, caps.default_width
    if request.size is not None and request.size != "auto":
        match = _SIZE_RE.match(request.size)
        if match is None:
            raise BadRequestError(
                f"size: expected 'WIDTHxHEIGHT' like '512x512' or 'auto', got {request.size!r}"
            )
        width, height = int(match.group(1)), int(match.group(2))
    # Image i gets seed + i, so the last one, seed + n - 1, must stay <= 2**63-1.
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED - (request.n - 1):
        raise BadRequestError(
            f"seed: must be between 0 and 2**63-{request.n} for n={request.n}, got {request.seed}"
        )
    tasks = []
    for i in range(request.n):
        fields = ImageFields(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            height=height,
            width=width,
            seed=None if request.seed is None else request.seed + i,
            scheduler=request.scheduler,
            output_format=request.output_format,
        )
        tasks.append(resolve_image(fields, "", limits, caps))
    check_cost(tasks, limits)
    return request, tasks


# ---- KServe V2 -------------------------------------------------------------------------------------------

V2_STRING_INPUTS = ("prompt", "negative_prompt", "scheduler", "output_format")
V2_INT_KNOBS = ("num_inference_steps", "height", "width", "seed")
V2_FLOAT_KNOBS = ("guidance_scale",)
V2_KNOBS = ("num_inference_steps", "guidance_scale", "height", "width", "seed", "scheduler", "output_format")
V2_OUTPUTS = ("image", "seed")
# Parameters kserve itself interprets on a V2 request.
V2_PROTOCOL_PARAMETERS = ("binary_data_output",)
_INT_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FLOAT_TYPES = ("FP16", "FP32", "FP64", *_INT_TYPES)


@dataclass(frozen=True)
class V2Tensor:
    """The parts of a V2 input tensor the schema checks (decoupled from kserve's InferInput)."""

    name: str
    datatype: str
    shape: list[int]
    data: Any


def parse_v2(
    tensors: Iterable[V2Tensor], parameters: Mapping[str, Any] | None, limits: Limits, caps: Capabilities
) -> list[ImageTask]:
    """V2 inputs (BYTES ``prompt`` [N], optional ``negative_prompt`` [N] or [1], knobs as [1] tensors or
    request parameters, ``seed`` [N] or [1]) -> N tasks."""
    values: dict[str, list[Any]] = {}
    for tensor in tensors:
        if tensor.name in values:
            raise BadRequestError(f"inputs.{tensor.name}: given twice")
        values[tensor.name] = _tensor_values(tensor)
    params = dict(parameters or {})
    for name in V2_PROTOCOL_PARAMETERS:
        params.pop(name, None)
    for name, value in params.items():
        if name not in V2_KNOBS:
            raise BadRequestError(f"parameters.{name}: unknown parameter (allowed: {', '.join(V2_KNOBS)})")
        if name in values:
            raise BadRequestError(f"parameters.{name}: also given as an input tensor; give it once")
        values[name] = [value]
    if "prompt" not in values:
        raise BadRequestError("inputs.prompt: required BYTES tensor is missing")
    prompts = values.pop("prompt")
    count = len(prompts)
    _check_count(count, "inputs.prompt", limits)
    per_image = {name: _broadcast(name, vals, count) for name, vals in values.items()}
    seeds = per_image.get("seed")
    if seeds is not None and len(values["seed"]) == 1 and count > 1:
        seeds = [_seed_plus(seeds[0], i) for i in range(count)]
        per_image["seed"] = seeds
    tasks = []
    for i, prompt in enumerate(prompts):
        fields = {name: vals[i] for name, vals in per_image.items()}
        fields["prompt"] = prompt
        where = "" if count == 1 else f"[{i}] "
        tasks.append(resolve_image(_validate(ImageFields, fields, where), where, limits, caps))
    check_cost(tasks, limits)
    return tasks


def _seed_plus(seed: Any, offset: int) -> Any:
    return seed + offset if isinstance(seed, int) and not isinstance(seed, bool) else seed


def _broadcast(name: str, vals: list[Any], count: int) -> list[Any]:
    if name in ("negative_prompt", "seed"):
        if len(vals) not in (1, count):
            raise BadRequestError(
                f"inputs.{name}: needs 1 or {count} elements (one per prompt), got {len(vals)}"
            )
        return vals * count if len(vals) == 1 else vals
    if len(vals) != 1:
        raise BadRequestError(f"inputs.{name}: needs exactly 1 element, got {len(vals)}")
    return vals * count


def _tensor_values(tensor: V2Tensor) -> list[Any]:
    """Flatten and type-check one input tensor's data against its name, datatype and shape."""
    name, datatype = tensor.name, tensor.datatype
    allowed = (*V2_STRING_INPUTS, *V2_INT_KNOBS, *V2_FLOAT_KNOBS)
    if name not in allowed:
        raise BadRequestError(f"inputs.{name}: unknown input (allowed: {', '.join(allowed)})")
    if name in V2_STRING_INPUTS:
        expected: tuple[str, ...] = ("BYTES",)
    else:
        expected = _INT_TYPES if name in V2_INT_KNOBS else _FLOAT_TYPES
    if datatype not in expected:
        raise BadRequestError(
            f"inputs.{name}: datatype must be {' or '.join(expected[:4])}, got {datatype!r}"
        )
    flat = _flatten(tensor.data, name)
    shape = tensor.shape
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequestError(f"inputs.{name}: shape must be a list of non-negative integers, got {shape!r}")
    if int(np.prod(shape)) != len(flat):
        raise BadRequestError(f"inputs.{name}: shape {shape} does not match {len(flat)} data elements")
    if name in V2_STRING_INPUTS:
        return [_as_text(v, name) for v in flat]
    return [_as_number(v, name, integer=name in V2_INT_KNOBS) for v in flat]


def _flatten(data: Any, name: str) -> list[Any]:
    if isinstance(data, np.ndarray):
        return list(data.reshape(-1))
    if not isinstance(data, list):
        raise BadRequestError(f"inputs.{name}: data must be an array, got {_type_name(data)}")
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item, name) if isinstance(item, list) else [item])
    return flat


def _as_text(value: Any, name: str) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestError(f"inputs.{name}: element is not valid UTF-8") from None
    if isinstance(value, str):
        return value
    raise BadRequestError(f"inputs.{name}: elements must be strings, got {_type_name(value)}")


def _as_number(value: Any, name: str, *, integer: bool) -> Any:
    if isinstance(value, (bool, np.bool_)):
        raise BadRequestError(f"inputs.{name}: elements must be numbers, got boolean")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise BadRequestError(f"inputs.{name}: must be an integer, got {value}")
        return int(value)
    if isinstance(value, (int, float)):
        return value
    raise BadRequestError(f"inputs.{name}: elements must be numbers, got {_type_name(value)}")
