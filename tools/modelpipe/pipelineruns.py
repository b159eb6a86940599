"""PipelineRuns rendered from structured data: an example run, its Pipeline's params and run-script flags.

The run scripts call this module (``python -m modelpipe.pipelineruns``) instead of editing YAML text: the
example PipelineRun is loaded, params are set by name, workspaces bound, and the result dumped. Run-script
flags are the Pipeline's param names (``--model-name X`` sets param ``model-name``), so one name holds from
the run script to the Task to the ``modelpipe`` flag. It runs in the project's .venv (the run scripts
bootstrap it): model sources and names follow modelpipe.sources and modelpipe.names.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelpipe.errors import ConfigError, ModelpipeError
from modelpipe.names import is_dns_subdomain, require_namespace

ParamValue = str | list[str]
_FLAG = re.compile(r"^--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)$")


@dataclass(frozen=True)
class PipelineParam:
    """One param a Pipeline declares: its type (string or array) and whether it has a default."""

    name: str
    type: str
    required: bool


def pipeline_params(pipeline: Mapping[str, Any]) -> dict[str, PipelineParam]:
    """The params ``pipeline`` (a loaded Pipeline document) declares, by name."""
    return {
        p["name"]: PipelineParam(p["name"], p.get("type", "string"), "default" not in p)
        for p in pipeline.get("spec", {}).get("params", [])
    }


def _array(text: str) -> list[str]:
    """An array param from the command line: a JSON list, else comma-separated values."""
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{text!r} is not a JSON list", fix='e.g. \'["a", "b"]\' or a,b') from err
        if not isinstance(value, list):
            raise ConfigError(f"{text!r} is not a JSON list", fix='e.g. \'["a", "b"]\' or a,b')
        return [str(v) for v in value]
    return [part for part in text.split(",") if part]


def parse_param_flags(
    argv: Sequence[str], params: Mapping[str, PipelineParam], pipeline: str
) -> dict[str, ParamValue]:
    """``--NAME VALUE`` pairs, each NAME a param of the Pipeline; an empty VALUE means "not given".

    A later flag overrides an earlier one, so the run scripts put the .env-derived values first.

    Raises:
        ConfigError: An argument that is not such a flag, or a flag without a value.
    """
    given: dict[str, ParamValue] = {}
    items = list(argv)
    while items:
        flag = items.pop(0)
        match = _FLAG.match(flag)
        if not match or match[1] not in params:
            raise ConfigError(
                f"unknown argument {flag!r}",
                fix=f"see --help; {pipeline} params: {', '.join('--' + p for p in sorted(params))}",
            )
        if not items:
            raise ConfigError(f"{flag} needs a value")
        name, text = match[1], items.pop(0)
        if text == "":
            continue
        given[name] = _array(text) if params[name].type == "array" else text
    return given


# What --source defaults to per --model-kind when the run script is given none.
DEFAULT_SOURCES = {
    "text-to-image": "hf://stabilityai/sd-turbo",
    "text-generation": "hf://Qwen/Qwen2.5-0.5B-Instruct",
}


def import_params(given: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    """model-import: ``--source ORG/REPO`` means hf://ORG/REPO (default per model kind); model-name and
    name follow the source. Source and name rules are modelpipe.sources' and modelpipe.names'.

    Raises:
        InvalidSourceError: The source is neither a URI nor ORG/REPO.
        ConfigError: A model kind that does not exist.
    """
    from modelpipe.names import dns_label
    from modelpipe.sources import expand_source, parse_source

    params = dict(given)
    kind = str(params.get("model-kind", "text-to-image"))
    if kind not in DEFAULT_SOURCES:
        raise ConfigError(
            f"--model-kind {kind!r} is not a model kind", fix=f"use {' or '.join(DEFAULT_SOURCES)}"
        )
    if not isinstance(params.get("source", ""), str):
        raise ConfigError("--source takes one value")
    params["source"] = source = expand_source(str(params.get("source") or DEFAULT_SOURCES[kind]))
    if "model-name" not in params:
        params["model-name"] = dns_label(parse_source(source).name)
    if "name" not in params:
        params["name"] = dns_label(str(params["model-name"]))
    return params


def testing_params(given: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    """model-testing: ``--endpoint URL`` benchmarks that endpoint, so deploy defaults to false.

    Raises:
        ConfigError: The model URI is not an s3:// URI.
    """
    params = dict(given)
    uri = params.get("model-uri")
    if isinstance(uri, str) and not re.match(r"^s3://[^/]+", uri):
        raise ConfigError(f"--model-uri must be an s3:// URI, got {uri!r}", fix="the version's MODEL_URI")
    if "endpoint" in params:
        params.setdefault("deploy", "false")
    return params


# Per-pipeline conveniences of the run scripts, on top of the plain param flags.
DERIVED: dict[str, Callable[[Mapping[str, ParamValue]], dict[str, ParamValue]]] = {
    "model-import": import_params,
    "model-testing": testing_params,
}


def render_pipelinerun(
    example: Mapping[str, Any],
    *,
    namespace: str,
    params: Mapping[str, ParamValue],
    secret_workspaces: Mapping[str, str] | None = None,
    claim_workspaces: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``example`` with ``params`` set (replacing or adding), workspaces bound to Secrets or existing
    claims (replacing the example's binding), in ``namespace``."""
    run = copy.deepcopy(dict(example))
    run.setdefault("metadata", {})["namespace"] = namespace
    spec = run.setdefault("spec", {})
    merged = {p["name"]: p["value"] for p in spec.get("params", [])}
    merged.update(params)
    spec["params"] = [{"name": name, "value": value} for name, value in merged.items()]
    if secret_workspaces or claim_workspaces:
        bound = {w["name"]: w for w in spec.get("workspaces", [])}
        for name, secret in (secret_workspaces or {}).items():
            bound[name] = {"name": name, "secret": {"secretName": secret}}
        for name, claim in (claim_workspaces or {}).items():
            bound[name] = {"name": name, "persistentVolumeClaim": {"claimName": claim}}
        spec["workspaces"] = list(bound.values())
    return run


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} holds no YAML object")
    return doc


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=SECRET, got {text!r}")
    return name, value


def render_from_files(
    root: Path,
    pipeline: str,
    *,
    namespace: str,
    flags: Sequence[str],
    require: Sequence[str] = (),
    secret_workspaces: Mapping[str, str] | None = None,
    claim_workspaces: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The PipelineRun for ``pipelines/PIPELINE.yaml`` from ``pipelineruns/PIPELINE.yaml`` and ``flags``.

    Raises:
        ConfigError: A bad namespace, unknown flag, missing required flag, or a name that is no DNS label.
    """
    require_namespace("--namespace", namespace)
    params = pipeline_params(_load(root / "pipelines" / f"{pipeline}.yaml"))
    given = parse_param_flags(flags, params, pipeline)
    missing = [f"--{name}" for name in require if name not in given]
    if missing:
        raise ConfigError(f"missing required flags: {' '.join(missing)}", fix="see --help")
    given = DERIVED.get(pipeline, dict)(given)
    name = given.get("name")
    if isinstance(name, str):
        from modelpipe.names import MAX_SERVICE_NAME_LENGTH, require_dns_label

        require_dns_label("--name", name, MAX_SERVICE_NAME_LENGTH)
    claims = {k: v for k, v in (claim_workspaces or {}).items() if v}
    for claim in claims.values():
        if not is_dns_subdomain(claim):
            raise ConfigError(f"claim name {claim!r} is not a DNS name", fix="name an existing PVC")
    if given.get("storage") == "pvc" and "model" not in claims:
        raise ConfigError(
            "--storage pvc needs --model-pvc CLAIM",
            fix="a workspace volumeClaimTemplate is deleted with the run; bind an existing claim",
        )
    example = _load(root / "pipelineruns" / f"{pipeline}.yaml")
    return render_pipelinerun(
        example,
        namespace=namespace,
        params=given,
        secret_workspaces={k: v for k, v in (secret_workspaces or {}).items() if v},
        claim_workspaces=claims,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the rendered PipelineRun as YAML; a bad flag prints one line naming it and returns 1.

    Usage: ``python -m modelpipe.pipelineruns --root DIR --pipeline NAME --namespace NS [...] -- FLAGS``;
    everything after ``--`` is the run script's ``--PARAM VALUE`` flags (a param may be called
    ``namespace`` too, so they are kept apart from the renderer's own options).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    own, flags = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m modelpipe.pipelineruns",
        description="Render pipelineruns/PIPELINE.yaml with params from --PARAM VALUE flags after --.",
        allow_abbrev=False,
    )
    parser.add_argument("--root", type=Path, required=True, help="repository root")
    parser.add_argument("--pipeline", required=True, help="model-import, model-testing or build-images")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--prog", default="run", help="name for error messages (the calling script)")
    parser.add_argument(
        "--require", action="append", default=[], metavar="PARAM", help="a flag that must be given"
    )
    parser.add_argument(
        "--secret-workspace",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=SECRET",
        help="bind workspace NAME to Secret SECRET (an empty SECRET binds nothing)",
    )
    parser.add_argument(
        "--claim-workspace",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=CLAIM",
        help="bind workspace NAME to the existing PVC CLAIM (an empty CLAIM keeps the example's binding)",
    )
    args = parser.parse_args(own)
    try:
        run = render_from_files(
            args.root,
            args.pipeline,
            namespace=args.namespace,
            flags=flags,
            require=args.require,
            secret_workspaces=dict(args.secret_workspace),
            claim_workspaces=dict(args.claim_workspace),
        )
    except ModelpipeError as err:
        print(f"{args.prog}: error: {err.one_line()}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump(run, sort_keys=False, width=1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
