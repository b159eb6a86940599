"""`modelpipe publish`: benchmark results to the model version, an HTML report to S3, quality gates."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelpipe.cli.common import (
    CommandOutput,
    add_data_connection_flag,
    add_registry_url_flag,
    add_step_parser,
    registry_settings,
    s3_settings,
)
from modelpipe.errors import ConfigError
from modelpipe.model_kinds import MODEL_KINDS
from modelpipe.steps.publish import PublishResult, publish_results

EXAMPLES = """\
  modelpipe publish --benchmark-dir /workspace/bench --model-version-id 7 \\
      --model-uri s3://models/tiny-sd/3f2a9c1 --min-clip-score 20 --max-p95-seconds 3 \\
      --pipeline-run model-import-x7k2 --results-dir /tekton/results
  modelpipe publish --registry-url http://127.0.0.1:8080 --benchmark-dir ./bench --model-version-id 7 \\
      --report-dest s3://reports/tiny-sd/manual-run
  # a language model: lm-eval scores and guidellm figures, with gates on both
  modelpipe publish --model-kind text-generation --eval-dir ./eval --benchmark-dir ./bench \\
      --model-version-id 9 --model-uri s3://models/tiny-llm/v1 \\
      --gates min-acc-modelpipe_science_mc=0.2,max-ttft_p95_ms=500
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``publish`` subcommand."""
    parser = add_step_parser(
        subparsers,
        "publish",
        help="publish benchmark results to the model version and a report to S3",
        description="Upload results.json, an HTML report and its PNGs next to the model in S3, then write "
        "the numbers to the model version (doubles plus string copies for the dashboard), the report URI and "
        "the labels 'benchmarked' and, when gates were given and every one passes, 'validated' "
        "(VALIDATED is false with no gate: nothing was validated). A failed gate exits 1 after "
        "publishing. "
        "S3 from the data connection (AWS_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_DEFAULT_REGION); registry token MODEL_REGISTRY_TOKEN. Results: REPORT_URI, VALIDATED.",
        examples=EXAMPLES,
    )
    parser.add_argument(
        "--model-kind",
        choices=MODEL_KINDS,
        default="text-to-image",
        help="text-generation publishes lm-eval scores (--eval-dir) and guidellm figures "
        "(default text-to-image)",
    )
    parser.add_argument(
        "--benchmark-dir",
        type=Path,
        metavar="DIR",
        help="the folder `modelpipe benchmark --benchmark-dir` wrote (required for text-to-image)",
    )
    parser.add_argument(
        "--eval-dir",
        type=Path,
        metavar="DIR",
        help="`modelpipe evaluate --eval-dir` folder (text-generation)",
    )
    parser.add_argument(
        "--gates",
        type=_gates,
        default=[],
        metavar="SPEC,SPEC",
        help="text-generation gates min-NAME=V / max-NAME=V over the published numbers, e.g. "
        "min-acc-arc_easy=0.5,max-ttft_p95_ms=200 (names: <metric>-<task>, guidellm summary fields)",
    )
    parser.add_argument(
        "--model-version-id", required=True, metavar="ID", help="MODEL_VERSION_ID from register"
    )
    parser.add_argument(
        "--model-uri", metavar="s3://BUCKET/PREFIX", help="the model; the report goes to <parent>/reports/..."
    )
    parser.add_argument("--report-dest", metavar="s3://BUCKET/PREFIX", help="report location instead")
    parser.add_argument(
        "--min-clip-score", type=float, metavar="SCORE", help="gate: mean CLIP score >= SCORE"
    )
    parser.add_argument(
        "--max-p95-seconds", type=float, metavar="SECONDS", help="gate: single-stream p95 latency <= SECONDS"
    )
    parser.add_argument("--pipeline-run", metavar="NAME", help="PipelineRun name recorded with the results")
    add_registry_url_flag(parser)
    add_data_connection_flag(parser, purpose="where the report goes, named when its credentials are missing")
    parser.set_defaults(handler=run)


def _gates(text: str) -> list[str]:
    return [spec.strip() for spec in text.split(",") if spec.strip()]


def run(args: argparse.Namespace) -> CommandOutput:
    """Check flags, publish, and map the outcome to REPORT_URI / VALIDATED."""
    if not args.model_uri and not args.report_dest:
        raise ConfigError(
            "no report destination",
            fix="pass --model-uri s3://BUCKET/PREFIX (report goes next to it) or --report-dest",
        )
    result = _publish_llm(args) if args.model_kind == "text-generation" else _publish_images(args)
    summary = {"results_uri": result.results_uri, "objects_uploaded": str(result.objects_uploaded)}
    for gate in result.gates:
        summary[f"gate_{gate.name}"] = gate.describe()
    return CommandOutput(
        results={"REPORT_URI": result.report_uri, "VALIDATED": "true" if result.validated else "false"},
        summary=summary,
    )


def _publish_llm(args: argparse.Namespace) -> PublishResult:
    from modelpipe.steps.publish_llm import publish_llm_results

    if args.min_clip_score is not None:
        raise ConfigError("--min-clip-score applies to text-to-image models", fix="use --gates")
    gates = list(args.gates)
    if args.max_p95_seconds is not None:
        gates.append(f"max-request_latency_p95_seconds={args.max_p95_seconds}")
    return publish_llm_results(
        registry=registry_settings(args),
        s3=s3_settings(args),
        model_version_id=args.model_version_id,
        evaluation_dir=args.eval_dir,
        benchmark_dir=args.benchmark_dir,
        model_uri=args.model_uri,
        report_dest=args.report_dest,
        gates=gates,
        pipeline_run=args.pipeline_run,
    )


def _publish_images(args: argparse.Namespace) -> PublishResult:
    if args.benchmark_dir is None:
        raise ConfigError(
            "--benchmark-dir is required", fix="pass the `modelpipe benchmark --benchmark-dir` folder"
        )
    # --eval-dir is passed by the publish-results Task for every kind; only --gates is refused here.
    if args.gates:
        raise ConfigError("--gates applies to --model-kind text-generation", fix="use --min-clip-score")
    return publish_results(
        registry=registry_settings(args),
        s3=s3_settings(args),
        results_dir=args.benchmark_dir,
        model_version_id=args.model_version_id,
        model_uri=args.model_uri,
        report_dest=args.report_dest,
        min_clip_score=args.min_clip_score,
        max_p95_seconds=args.max_p95_seconds,
        pipeline_run=args.pipeline_run,
    )
