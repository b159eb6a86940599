"""`modelpipe evaluate`: lm-eval scores of a live OpenAI-compatible (vLLM) endpoint."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from modelpipe.cli.common import CommandOutput, add_data_connection_flag, add_step_parser, s3_settings
from modelpipe.config import MODELPIPE_EVAL_BIN, endpoint_token, eval_bin_dir
from modelpipe.llm_results import EvaluationResults

EXAMPLES = """\
  # the bundled offline tasks against a local vLLM server, tokenizer from the model folder:
  modelpipe evaluate --endpoint http://127.0.0.1:8000 --model-name tiny-llm --tokenizer ./tiny-llm \\
      --tasks modelpipe_science_mc,modelpipe_sentence_mc,modelpipe_arith_gen --eval-dir ./eval
  # the seed's tasks (data from the Hub), tokenizer fetched from the uploaded model:
  modelpipe evaluate --endpoint http://llama-predictor:8080 --model-name llama \\
      --tokenizer s3://models/llama/v1 --tasks hellaswag,arc_easy --limit 200 --eval-dir /workspace/eval \\
      --results-dir /tekton/results
"""


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return int(text)


def _tasks(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not names or any(not name for name in names):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of task names")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `modelpipe evaluate`."""
    from modelpipe.steps.evaluate import DEFAULT_TASKS, OFFLINE_TASKS

    parser = add_step_parser(
        subparsers,
        "evaluate",
        help="lm-eval scores of a live language-model endpoint",
        description=(
            "Look the tasks up in lm-eval's registry (an unknown task fails before any request), then run "
            "lm-eval against the endpoint: log-likelihood tasks (multiple choice) through "
            "local-completions, generation tasks through local-chat-completions, tokens counted with the "
            "model's own tokenizer. Writes EVAL_DIR/results.json (schema: modelpipe.llm_results) and "
            f"lm-eval's raw output in EVAL_DIR/lm-eval/. Bundled offline tasks: {', '.join(OFFLINE_TASKS)}. "
            f"lm_eval comes from --eval-bin (default: env {MODELPIPE_EVAL_BIN}, else PATH). s3:// tokenizers "
            "use AWS_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY. An endpoint deployed with "
            "auth=true gets ENDPOINT_TOKEN as its bearer token (Secret NAME-sa-token, key token). "
            "Result: EVAL_SCORES (JSON)."
        ),
        examples=EXAMPLES,
    )
    parser.add_argument("--endpoint", required=True, metavar="URL", help="server base URL (/v1 is added)")
    parser.add_argument("--model-name", required=True, metavar="NAME", help="served model name")
    parser.add_argument(
        "--tokenizer",
        required=True,
        metavar="DIR|s3://BUCKET/PREFIX",
        help="model folder, or the uploaded model's URI (only tokenizer files are fetched)",
    )
    parser.add_argument(
        "--tasks",
        type=_tasks,
        default=list(DEFAULT_TASKS),
        metavar="TASK,TASK",
        help=f"lm-eval tasks, groups or tags (default {','.join(DEFAULT_TASKS)})",
    )
    parser.add_argument("--limit", type=_positive, metavar="N", help="documents per task (default: all)")
    parser.add_argument("--num-fewshot", type=_count, metavar="N", help="few-shot examples (default: task's)")
    parser.add_argument(
        "--num-concurrent", type=_positive, default=1, metavar="N", help="parallel requests (default 1)"
    )
    parser.add_argument(
        "--max-length", type=_positive, default=2048, metavar="TOKENS", help="context length (default 2048)"
    )
    parser.add_argument(
        "--generation-api",
        choices=("chat-completions", "completions"),
        default="chat-completions",
        help="API for generation tasks (default chat-completions: the served chat template applies)",
    )
    parser.add_argument(
        "--include-path",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of lm-eval task YAML (repeatable)",
    )
    parser.add_argument("--eval-bin", metavar="DIR", help="folder with lm_eval and its python")
    add_data_connection_flag(parser, purpose="for an s3:// tokenizer, named when its credentials are missing")
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=3600,
        metavar="SECONDS",
        help="stop lm-eval after this long (default 3600)",
    )
    parser.add_argument(
        "--eval-dir", type=Path, required=True, metavar="DIR", help="writes results.json and lm-eval/"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> CommandOutput:
    """Evaluate and report EVAL_SCORES (one headline metric per task, as JSON)."""
    from modelpipe.eval_tools import find_eval_tools
    from modelpipe.steps.evaluate import evaluate_model
    from modelpipe.tokenizer_files import resolve_tokenizer

    tools = find_eval_tools(args.eval_bin or eval_bin_dir())
    tokenizer = resolve_tokenizer(args.tokenizer, cache_dir=args.eval_dir / "tokenizer", s3=s3_settings(args))
    outcome = evaluate_model(
        endpoint=args.endpoint,
        model_name=args.model_name,
        tokenizer_dir=tokenizer,
        tasks=args.tasks,
        eval_dir=args.eval_dir,
        tools=tools,
        environ=os.environ,
        limit=args.limit,
        num_fewshot=args.num_fewshot,
        num_concurrent=args.num_concurrent,
        max_length=args.max_length,
        generation_api=args.generation_api,
        include_paths=args.include_path,
        timeout_seconds=float(args.timeout),
        endpoint_token=endpoint_token(),
    )
    scores = {task.name: metric.value for task in outcome.results.tasks if (metric := task.headline())}
    summary = _describe(outcome.results)
    summary["results"] = str(outcome.results_path)
    return CommandOutput(
        results={"EVAL_SCORES": json.dumps(scores, sort_keys=True, separators=(",", ":"))}, summary=summary
    )


def _describe(results: EvaluationResults) -> dict[str, str]:
    lines = {}
    for task in results.tasks:
        parts = []
        for metric in task.metrics:
            stderr = f" ± {metric.stderr:.4f}" if metric.stderr is not None else ""
            parts.append(f"{metric.name}={metric.value:.4f}{stderr}")
        lines[task.name] = f"{', '.join(parts)} ({task.samples} samples, {task.api})"
    return lines
