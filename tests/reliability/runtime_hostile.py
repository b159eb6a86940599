"""Hostile requests for the diffusers runtime over every protocol (V1, V2 JSON, V2 binary, OpenAI), as
hypothesis strategies, plus the one function that sends a case and checks the answer.

Shared by tests/reliability/test_runtime_fuzz.py (a bounded count) and benchmarks/runtime_fuzz.py (2000+).
Valid sizes and steps stay small (64-96 px, 1-3 steps) so that an accepted request costs about a second on a
CPU; everything else a client can get wrong is drawn freely: types, ranges, encodings, shapes, extra fields,
lone surrogates, truncated and mis-declared binary tensors, garbage bodies and headers.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st

# An accepted request must be answered within this (the bound for valid requests).
VALID_LATENCY_S = 30.0

SURROGATES = st.sampled_from(["\udc00", "\ud800", "a\udfffb", "\ud83d"])
TEXT = st.one_of(
    st.text(min_size=1, max_size=40),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=5), SURROGATES, st.text(max_size=5)),
    st.just(""),
    st.just("   "),
    st.just("x" * 2001),
    st.just("\x00\x01 prompt"),
)
GOOD_PROMPT = st.sampled_from(["a red fox", "a watercolor city at dusk", "日本の庭", "emoji 🦊"])
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
GOOD_SIDE = st.sampled_from([64, 72, 80, 96])
BAD_SIDE = st.sampled_from([0, -64, 63, 65, 4104, 100000, 2**40])
GOOD_STEPS = st.integers(min_value=1, max_value=3)
BAD_STEPS = st.sampled_from([0, -1, 101, 10**9, 2**64])


@dataclass
class Case:
    """One HTTP request: which protocol it exercises, and whether it is a valid one (must be answered 200)."""

    protocol: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    valid: bool = False


@dataclass
class Outcome:
    case: Case
    status: int  # 0: the connection failed or timed out
    seconds: float
    retry_after: str | None
    text: str


def _maybe(value: st.SearchStrategy[Any], junk: st.SearchStrategy[Any] = JUNK) -> st.SearchStrategy[Any]:
    """Usually a good value, sometimes junk of any type, sometimes absent (``...``)."""
    return st.one_of(value, value, value, junk, st.just(...))


@st.composite
def image_fields(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """Fields of one image and whether they are certainly valid (small, cheap, well-typed)."""
    valid = draw(st.booleans())
    if valid:
        fields: dict[str, Any] = {
            "prompt": draw(GOOD_PROMPT),
            "num_inference_steps": draw(GOOD_STEPS),
            "height": draw(GOOD_SIDE),
            "width": draw(GOOD_SIDE),
        }
        if draw(st.booleans()):
            fields["seed"] = draw(st.integers(min_value=0, max_value=2**63 - 100))
        if draw(st.booleans()):
            fields["guidance_scale"] = draw(st.floats(min_value=0, max_value=30))
        if draw(st.booleans()):
            fields["output_format"] = draw(st.sampled_from(["PNG", "jpeg", "WebP", "jpg"]))
        if draw(st.booleans()):
            fields["negative_prompt"] = draw(GOOD_PROMPT)
        return fields, True
    candidates = {
        "prompt": _maybe(TEXT),
        "negative_prompt": _maybe(TEXT),
        # Always present: the default (30 steps) would make a cheap-looking request slow on a CPU.
        "num_inference_steps": st.one_of(GOOD_STEPS, BAD_STEPS, JUNK),
        "height": st.one_of(GOOD_SIDE, BAD_SIDE, JUNK),
        "width": st.one_of(GOOD_SIDE, BAD_SIDE, JUNK),
        "guidance_scale": _maybe(st.floats(min_value=-5, max_value=100)),
        "seed": _maybe(st.integers(min_value=-5, max_value=2**64)),
        "scheduler": _maybe(st.sampled_from(["default", "euler", "nope", "\udc00"])),
        "output_format": _maybe(st.sampled_from(["PNG", "gif", "", "\ud800"])),
        draw(st.text(min_size=1, max_size=8)): JUNK,
    }
    fields = {}
    for name, strategy in candidates.items():
        value = draw(strategy)
        if value is not ...:
            fields[name] = value
    return fields, False


def _json(value: Any) -> bytes:
    """JSON as a careless client writes it: lone surrogates escaped (``\\udc00``), which Python accepts."""
    return json.dumps(value).encode("utf-8")


@st.composite
def v1_case(draw: st.DrawFn, model: str) -> Case:
    path = f"/v1/models/{model}:predict"
    shape = draw(st.sampled_from(["instances", "instances", "instances", "junk"]))
    if shape == "junk":
        return Case("v1", path, _json(draw(st.one_of(JUNK, st.fixed_dictionaries({"instances": JUNK})))))
    drawn = draw(st.lists(image_fields(), min_size=0, max_size=5))
    body: dict[str, Any] = {"instances": [f for f, _ in drawn]}
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(min_size=1, max_size=5))] = draw(JUNK)
    valid = len(body) == 1 and 1 <= len(drawn) <= 4 and all(ok for _, ok in drawn)
    if valid:
        # One batch key per request keeps an accepted request to one pipeline call.
        first = drawn[0][0]
        for fields, _ in drawn:
            for knob in ("num_inference_steps", "height", "width"):
                fields[knob] = first[knob]
    return Case("v1", path, _json(body), valid=valid)


def _tensor(name: str, datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}


@st.composite
def v2_json_case(draw: st.DrawFn, model: str) -> Case:
    path = f"/v2/models/{model}/infer"
    fields, valid = draw(image_fields())
    count = draw(st.integers(1, 3)) if valid else draw(st.integers(0, 6))
    prompt = fields.pop("prompt", None)
    inputs: list[dict[str, Any]] = []
    if prompt is not None or not valid:
        inputs.append(_tensor("prompt", "BYTES", [prompt] * count))
    if "negative_prompt" in fields:
        inputs.append(_tensor("negative_prompt", "BYTES", [fields.pop("negative_prompt")]))
    parameters = {k: v for k, v in fields.items()}
    body: dict[str, Any] = {"inputs": inputs, "parameters": parameters}
    mutation = draw(st.integers(0, 9)) if not valid else 9
    if mutation == 0:
        body["inputs"] = draw(JUNK)
    elif mutation == 1 and inputs:
        inputs[0]["shape"] = draw(st.lists(st.integers(-3, 2**40), max_size=3))
    elif mutation == 2 and inputs:
        inputs[0]["datatype"] = draw(st.sampled_from(["INT32", "FP32", "BOOL", "bytes", ""]))
    elif mutation == 3:
        body["id"] = draw(st.one_of(JUNK, SURROGATES))
    elif mutation == 4:
        body["outputs"] = [
            {"name": draw(st.sampled_from(["image", "seed", "nope"])), "parameters": draw(JUNK)}
        ]
    elif mutation == 5:
        inputs.append(
            _tensor(draw(st.sampled_from(["seed", "height", "bogus"])), "INT64", draw(st.lists(JUNK)))
        )
    valid = valid and 1 <= count <= 4 and mutation == 9
    if valid and draw(st.booleans()):
        body["outputs"] = [{"name": "image", "parameters": {"binary_data": True}}]
    return Case("v2-json", path, _json(body), {"Content-Type": "application/json"}, valid=valid)


def _bytes_tensor(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


@st.composite
def v2_binary_case(draw: st.DrawFn, model: str) -> Case:
    """The binary data extension: a JSON header, then raw tensors; sizes and lengths may lie."""
    path = f"/v2/models/{model}/infer"
    good = draw(st.booleans())
    if good:
        prompts = [draw(GOOD_PROMPT).encode() for _ in range(draw(st.integers(1, 3)))]
    else:
        prompts = draw(
            st.lists(
                st.one_of(st.binary(max_size=20), st.just(b"\xed\xb0\x80"), st.just(b"\xff\xfe")),
                max_size=4,
            )
        )
    tensor = _bytes_tensor(prompts)
    declared = len(tensor)
    if not good:
        tensor = draw(st.sampled_from([tensor, tensor[:-1], tensor + b"\x00", struct.pack("<I", 2**31)]))
        declared = draw(st.sampled_from([declared, declared + 7, 0, -1, 2**40]))
    header_fields: dict[str, Any] = {
        "inputs": [
            {
                "name": "prompt",
                "datatype": "BYTES",
                "shape": [len(prompts)],
                "parameters": {"binary_data_size": declared},
            }
        ],
        "parameters": {
            "num_inference_steps": draw(GOOD_STEPS),
            "height": draw(GOOD_SIDE),
            "width": draw(GOOD_SIDE),
            "binary_data_output": draw(st.booleans()),
        },
    }
    header = _json(header_fields)
    header_length = str(len(header))
    if not good:
        header_length = draw(
            st.sampled_from([header_length, "0", "-5", "abc", str(len(header) + 9), "99999"])
        )
    headers = {"Inference-Header-Content-Length": header_length, "Content-Type": "application/octet-stream"}
    return Case("v2-binary", path, header + tensor, headers, valid=good)


@st.composite
def openai_case(draw: st.DrawFn, model: str) -> Case:
    path = "/openai/v1/images/generations"
    fields, valid = draw(image_fields())
    body: dict[str, Any] = {k: v for k, v in fields.items() if k not in ("height", "width")}
    size = draw(st.sampled_from(["size", "size", "auto", "junk"])) if not valid else "size"
    if size == "size":
        body["size"] = f"{fields.get('width', 64)}x{fields.get('height', 64)}"
    elif size == "auto":
        body["size"] = "auto"
    else:
        body["size"] = draw(st.one_of(JUNK, st.sampled_from(["64X64", "x", "64x64x64", "99999x99999"])))
    n = draw(st.integers(1, 3)) if valid else draw(st.one_of(st.integers(-2, 9), JUNK))
    body["n"] = n
    if draw(st.integers(0, 4)) == 0:
        body["model"] = draw(st.sampled_from([model, "other", "\udc00"]))
        valid = valid and body["model"] == model
    if not valid and draw(st.booleans()):
        body["response_format"] = draw(st.sampled_from(["url", "b64_json", ""]))
    valid = valid and size == "size" and isinstance(n, int) and 1 <= n <= 4
    return Case("openai", path, _json(body), {"Content-Type": "application/json"}, valid=valid)


@st.composite
def garbage_case(draw: st.DrawFn, model: str) -> Case:
    """Bodies that are not JSON, and headers a client should not send, on any generation route."""
    path = draw(
        st.sampled_from(
            [
                f"/v1/models/{model}:predict",
                f"/v2/models/{model}/infer",
                "/openai/v1/images/generations",
                "/v1/models/other:predict",
                "/v2/models/other/infer",
            ]
        )
    )
    body = draw(
        st.one_of(
            st.binary(max_size=64),
            st.just(b'{"instances": [{"prompt": "\\udc00'),
            st.just(b'{"prompt": "\xed\xb0\x80"}'),
            st.just(b"[" * 2000 + b"]" * 2000),
            st.just(b'{"a":' * 600 + b"1" + b"}" * 600),
        )
    )
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "", "application/x"]))}
    if draw(st.booleans()):
        headers["Request-Timeout"] = draw(st.sampled_from(["abc", "-1", "0", "1e309", "nan", "inf"]))
    return Case("garbage", path, body, headers)


def hostile_cases(model: str) -> st.SearchStrategy[Case]:
    """Any hostile case, over every protocol."""
    return st.one_of(
        v1_case(model),
        v2_json_case(model),
        v2_binary_case(model),
        openai_case(model),
        garbage_case(model),
    )


def send(client: httpx.Client, case: Case, *, timeout: float = 120.0) -> Outcome:
    """Send a case; status 0 if the connection failed or timed out."""
    started = time.monotonic()
    try:
        response = client.post(case.path, content=case.body, headers=case.headers, timeout=timeout)
    except httpx.HTTPError as err:
        return Outcome(case, 0, time.monotonic() - started, None, f"{type(err).__name__}: {err}")
    return Outcome(
        case,
        response.status_code,
        time.monotonic() - started,
        response.headers.get("retry-after"),
        response.text,
    )


def problem(outcome: Outcome) -> str | None:
    """What is wrong with an answer, or None: valid cases get 200 within VALID_LATENCY_S, any case may get
    429/503 with Retry-After, every other answer is a 4xx."""
    status, case = outcome.status, outcome.case
    if status in (429, 503) and outcome.retry_after:
        return None
    if status == 0 or status >= 500:
        return f"{case.protocol} {case.path} answered {status or 'no response'}: {outcome.text[:300]}"
    if case.valid and status != 200:
        return f"valid {case.protocol} request answered {status}: {outcome.text[:300]}"
    if case.valid and outcome.seconds > VALID_LATENCY_S:
        return f"valid {case.protocol} request took {outcome.seconds:.1f} s"
    if not 200 <= status < 500:
        return f"{case.protocol} answered {status}"
    return None
