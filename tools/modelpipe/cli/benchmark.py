"""`modelpipe benchmark`: CLIP score and latency of an image endpoint; guidellm figures of an LLM one."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from modelpipe.cli.common import CommandOutput, add_data_connection_flag, add_step_parser, s3_settings
from modelpipe.config import endpoint_token, hf_token
from modelpipe.model_kinds import MODEL_KINDS

# ViT-B/16: the backbone of the published diffusers CLIP-score reference values (SD v1-5 about 36).
DEFAULT_CLIP_MODEL = "hf://openai/clip-vit-base-patch16"
T = TypeVar("T")

EXAMPLES = """\
  modelpipe benchmark --endpoint http://127.0.0.1:8080 --model-name tiny-sd --clip-model ./tiny-clip \\
      --concurrency 1,2 --requests 4 --steps 2 --size 64x64 --guidance 0 --benchmark-dir ./bench
  modelpipe benchmark --endpoint https://sd15.models.example.com --model-name sd15 \\
      --clip-model s3://models/clip-vit-base-patch16 --prompts prompts.txt --benchmark-dir /workspace/bench \\
      --results-dir /tekton/results
  # CLIP model from the Hub (the default, openai/clip-vit-base-patch16), built-in prompts:
  modelpipe benchmark --endpoint http://sd15-predictor:8080 --model-name sd15 --benchmark-dir ./bench
  # a language model (vLLM): guidellm synchronous, then 2 and 4 concurrent streams
  modelpipe benchmark --model-kind text-generation --endpoint http://127.0.0.1:8000 --model-name tiny-llm \
      --tokenizer ./tiny-llm --concurrency 1,2,4 --requests 20 --benchmark-dir ./bench
"""


# Type conversion only: ranges (levels >= 1 and distinct, sizes in multiples of 8, ...) are the steps' checks.
def _levels(text: str) -> list[int]:
    if not re.fullmatch(r"\s*-?\d+(\s*,\s*-?\d+)*\s*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 1,2,4,8")
    return [int(part) for part in text.split(",")]


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 512x512")
    return int(match[1]), int(match[2])


def _or_empty(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    """An empty flag value means "the served model's default"."""

    def parse_or_none(text: str) -> T | None:
        return None if not text.strip() else parse(text)

    return parse_or_none


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `modelpipe benchmark`."""
    parser = add_step_parser(
        subparsers,
        "benchmark",
        help="CLIP score and latency of a live endpoint",
        description=(
            "Generate one image per prompt with fixed seeds through the KServe V1 predict route and score "
            "them with torchmetrics CLIPScore; then time --requests requests at each --concurrency level "
            "after --warmup untimed ones. Writes BENCHMARK_DIR/results.json (schema: "
            "modelpipe.benchmark_schema) and BENCHMARK_DIR/images/. s3:// CLIP models use AWS_S3_ENDPOINT, "
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; hf:// uses HF_TOKEN. An endpoint deployed with "
            "auth=true gets ENDPOINT_TOKEN as its bearer token (Secret NAME-sa-token, key token). "
            "Results: CLIP_SCORE, P50_SECONDS, P95_SECONDS (lowest concurrency), IMAGES_PER_SECOND (peak)."
        ),
        examples=EXAMPLES,
    )
    parser.add_argument(
        "--model-kind",
        choices=MODEL_KINDS,
        default="text-to-image",
        help="text-to-image: CLIP score and latency; text-generation: guidellm (default text-to-image)",
    )
    parser.add_argument("--endpoint", required=True, metavar="URL", help="inference service base URL")
    parser.add_argument("--model-name", required=True, metavar="NAME", help="served model name")
    parser.add_argument(
        "--clip-model",
        default=DEFAULT_CLIP_MODEL,
        metavar="SOURCE",
        help=f"hf://ORG/REPO[@REV], s3://BUCKET/PREFIX or a folder (default {DEFAULT_CLIP_MODEL})",
    )
    parser.add_argument(
        "--prompts",
        type=Path,
        metavar="FILE",
        help="one prompt per line, '#' comments (default: built-in 40)",
    )
    parser.add_argument(
        "--concurrency",
        type=_levels,
        default=[1, 2, 4, 8],
        metavar="N,N",
        help="sweep levels (default 1,2,4,8)",
    )
    parser.add_argument("--requests", type=int, default=16, metavar="N", help="timed requests per level (16)")
    parser.add_argument(
        "--warmup", type=int, default=2, metavar="N", help="untimed requests first (default 2)"
    )
    parser.add_argument(
        "--steps",
        type=_or_empty(int),
        default=None,
        metavar="N",
        help="inference steps (default or empty: the served model's default, from its V2 metadata)",
    )
    parser.add_argument(
        "--size",
        type=_or_empty(_size),
        default=None,
        metavar="WxH",
        help="image size (default or empty: the served model's default)",
    )
    parser.add_argument(
        "--guidance",
        type=_or_empty(float),
        default=None,
        metavar="G",
        help="guidance scale (default or empty: the served model's default, e.g. 0 for sd-turbo)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="prompt i uses seed S+i (default 0)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="per-request timeout (default 600)",
    )
    parser.add_argument("--clip-cache", type=Path, metavar="DIR", help="keep downloaded CLIP models here")
    parser.add_argument(
        "--benchmark-dir", type=Path, required=True, metavar="DIR", help="writes results.json and images/"
    )
    add_data_connection_flag(parser, purpose="for s3:// CLIP models, named when its credentials are missing")
    llm = parser.add_argument_group("text-generation (guidellm)")
    llm.add_argument(
        "--tokenizer", metavar="DIR|s3://BUCKET/PREFIX", help="model folder or uploaded model URI (required)"
    )
    llm.add_argument(
        "--prompt-tokens", type=int, default=64, metavar="N", help="synthetic prompt length (64)"
    )
    llm.add_argument(
        "--output-tokens", type=int, default=32, metavar="N", help="tokens generated per request (32)"
    )
    llm.add_argument(
        "--eval-bin", metavar="DIR", help="folder with guidellm (default: env MODELPIPE_EVAL_BIN)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput:
    """Benchmark and report CLIP_SCORE, P50_SECONDS, P95_SECONDS, IMAGES_PER_SECOND (or the LLM figures)."""
    if args.model_kind == "text-generation":
        return run_llm(args)
    # Imported here: the step pulls in torch and transformers, which every other subcommand's start-up skips.
    from modelpipe.steps.benchmark import benchmark_model

    width, height = args.size if args.size is not None else (None, None)
    outcome = benchmark_model(
        endpoint=args.endpoint,
        model_name=args.model_name,
        clip_model=args.clip_model,
        out_dir=args.benchmark_dir,
        prompts_file=args.prompts,
        concurrency=args.concurrency,
        requests=args.requests,
        warmup=args.warmup,
        steps=args.steps,
        width=width,
        height=height,
        guidance_scale=args.guidance,
        seed=args.seed,
        timeout_seconds=args.timeout,
        s3_settings=s3_settings(args),
        hf_token=hf_token(),
        clip_cache_dir=args.clip_cache,
        endpoint_token=endpoint_token(),
    )
    results = outcome.results
    return CommandOutput(
        results={
            "CLIP_SCORE": f"{results.clip_score.mean:.4f}",
            "P50_SECONDS": f"{results.summary.p50_seconds:.4f}",
            "P95_SECONDS": f"{results.summary.p95_seconds:.4f}",
            "IMAGES_PER_SECOND": f"{results.summary.images_per_second:.4f}",
        },
        summary={
            "results": str(outcome.results_path),
            "images": f"{len(results.images)} in {outcome.images_dir}",
            "errors": f"{results.summary.errors}/{results.summary.requests} timed requests",
        },
    )


def run_llm(args: argparse.Namespace) -> CommandOutput:
    """guidellm against an OpenAI-compatible endpoint; results TTFT_P50_MS, OUTPUT_TOKENS_PER_SECOND, ..."""
    from modelpipe.config import eval_bin_dir
    from modelpipe.errors import ConfigError
    from modelpipe.eval_tools import find_eval_tools
    from modelpipe.steps.benchmark_llm import benchmark_llm
    from modelpipe.tokenizer_files import resolve_tokenizer

    if not args.tokenizer:
        raise ConfigError(
            "--model-kind text-generation needs --tokenizer", fix="pass the model folder or its s3:// URI"
        )
    tools = find_eval_tools(args.eval_bin or eval_bin_dir())
    tokenizer = resolve_tokenizer(
        args.tokenizer, cache_dir=args.benchmark_dir / "tokenizer", s3=s3_settings(args)
    )
    outcome = benchmark_llm(
        endpoint=args.endpoint,
        model_name=args.model_name,
        tokenizer_dir=tokenizer,
        benchmark_dir=args.benchmark_dir,
        tools=tools,
        environ=os.environ,
        concurrency=args.concurrency,
        requests=args.requests,
        prompt_tokens=args.prompt_tokens,
        output_tokens=args.output_tokens,
        timeout_seconds=args.timeout,
        endpoint_token=endpoint_token(),
    )
    summary = outcome.results.summary
    return CommandOutput(
        results={
            "TTFT_P50_MS": f"{summary.ttft_p50_ms:.3f}",
            "TTFT_P95_MS": f"{summary.ttft_p95_ms:.3f}",
            "P50_SECONDS": f"{summary.request_latency_p50_seconds:.4f}",
            "P95_SECONDS": f"{summary.request_latency_p95_seconds:.4f}",
            "OUTPUT_TOKENS_PER_SECOND": f"{summary.output_tokens_per_second:.2f}",
            "REQUESTS_PER_SECOND": f"{summary.requests_per_second:.3f}",
        },
        summary={
            "results": str(outcome.results_path),
            "itl_p50_ms": f"{summary.itl_p50_ms:.3f}",
            "tpot_p50_ms": f"{summary.tpot_p50_ms:.3f}",
            "errors": f"{summary.errors}/{summary.requests + summary.errors} requests",
        },
    )
