#!/usr/bin/env bash
# Shared by deploy.sh, run-model-import.sh and run-model-testing.sh: .env parsing (never printed),
# calling the modelpipe renderers (PipelineRuns, kustomizations: YAML built as data, never as text),
# creating and following runs.
# Sourced, not executed; callers set -euo pipefail.

# die MESSAGE: one line on stderr naming the problem (and the fix), exit 1.
die() {
  echo "${0##*/}: error: $*" >&2
  exit 1
}

# log MESSAGE: progress on stderr (stdout stays for manifests and run names).
log() {
  echo "${0##*/}: $*" >&2
}

declare -gA ENV_VALUES=()

# load_env FILE: read KEY=VALUE lines into ENV_VALUES without evaluating them (no shell expansion).
load_env() {
  local file=$1 line key value lineno=0
  if [ ! -r "$file" ] || [ -d "$file" ]; then
    die "$file not found or not readable (fix: cp .env.template .env and fill it in)"
  fi
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    line=${line#export }
    if [[ ! $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
      die "$file line $lineno is not KEY=VALUE"
    fi
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then
      value=${BASH_REMATCH[1]}
    fi
    ENV_VALUES[$key]=$value
  done <"$file"
}

# env_value KEY [DEFAULT]: the value from .env, else DEFAULT.
env_value() {
  local value=${ENV_VALUES[$1]:-}
  printf '%s' "${value:-${2:-}}"
}

# require_env KEY...: die naming every key that is missing or empty (names only, never values).
require_env() {
  local key missing=()
  for key in "$@"; do
    [ -n "${ENV_VALUES[$key]:-}" ] || missing+=("$key")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local IFS=,
    die "missing required keys in .env: ${missing[*]// /} (fix: set them; .env.template documents each)"
  fi
}

# renderer_python ROOT: the project's python, for the modelpipe renderers (bootstrapping .venv once, as
# --local does: the renderers share modelpipe's source and name rules).
renderer_python() {
  local root=$1
  [ -x "$root/.venv/bin/python" ] || make -s -C "$root" venv >&2
  echo "$root/.venv/bin/python"
}

# modelpipe_module ROOT MODULE ARGS...: run a dependency-light modelpipe module (no install needed).
modelpipe_module() {
  local root=$1 module=$2
  shift 2
  PYTHONPATH="$root/tools${PYTHONPATH:+:$PYTHONPATH}" "$(renderer_python "$root")" -m "modelpipe.$module" "$@"
}

# render_run ROOT PIPELINE NAMESPACE [RENDERER OPTIONS...] -- [--PARAM VALUE...]: the PipelineRun YAML for
# pipelines/PIPELINE.yaml, from pipelineruns/PIPELINE.yaml with the flags as params (modelpipe.pipelineruns:
# YAML loaded, params set, YAML dumped; unknown flags are named there).
render_run() {
  local root=$1 pipeline=$2 namespace=$3
  shift 3
  modelpipe_module "$root" pipelineruns --root "$root" --pipeline "$pipeline" --namespace "$namespace" \
    --prog "${0##*/}" "$@"
}

# require_namespace WHAT VALUE: exit 1 unless VALUE is a namespace name; WHAT names its source. The rule
# lives in modelpipe.names, with the other Kubernetes name rules.
require_namespace() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  modelpipe_module "$root" names "${0##*/}" "$1" "$2" || exit 1
}

# --- Run scripts (run-model-import.sh, run-model-testing.sh) ---------------------------------------
# Flags both scripts take, set by parse_run_args; RUN_ARGS holds every other flag with its value (the
# Pipeline's params by name: --model-name X), checked by the renderer.
RUN_NAMESPACE=""
RUN_ENV_FILE=""
RUN_FOLLOW=false
RUN_DRY_RUN=false
# shellcheck disable=SC2034 # read by run-model-import.sh (--model-pvc CLAIM binds the model workspace)
RUN_MODEL_PVC=""
RUN_ARGS=()

# model_kind VALUE: the model kind a --model-kind/--kind value names (llm and image are shorthands).
model_kind() {
  case $1 in
    llm | text-generation) echo text-generation ;;
    image | text-to-image) echo text-to-image ;;
    *) die "--model-kind must be text-to-image or text-generation (or --kind llm / image), got '$1'" ;;
  esac
}

# run_local_if_requested ROOT SUBCOMMAND ARGS...: when ARGS hold --local, exec
# `modelpipe local SUBCOMMAND` with the other ARGS (ROOT is the repository, which has the Makefile).
# --kind/--model-kind become --model-kind KIND; a language model also needs the vLLM and eval venvs.
run_local_if_requested() {
  local root=$1 subcommand=$2 local=false kind="" rest=()
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      --local) local=true ;;
      --kind | --model-kind)
        [ $# -ge 2 ] || die "$1 needs a value"
        kind=$(model_kind "$2")
        rest+=(--model-kind "$kind")
        shift
        ;;
      *) rest+=("$1") ;;
    esac
    shift
  done
  $local || return 0
  make -s -C "$root" venv
  [ "$kind" != text-generation ] || make -s -C "$root" vllm-venv eval-env
  exec "$root/.venv/bin/modelpipe" local "$subcommand" "${rest[@]}"
}

# shellcheck disable=SC2034 # RUN_MODEL_PVC is read by run-model-import.sh
# parse_run_args ARGS...: the shared flags (--namespace, --env-file, --follow, --dry-run, -h/--help) into
# RUN_*; every other --flag VALUE pair into RUN_ARGS. The caller defines usage().
parse_run_args() {
  while [ $# -gt 0 ]; do
    case $1 in
      -h | --help) usage; exit 0 ;;
      --follow) RUN_FOLLOW=true; shift; continue ;;
      --dry-run) RUN_DRY_RUN=true; shift; continue ;;
    esac
    [[ $1 == --?* ]] || { usage >&2; die "unknown argument '$1'"; }
    [ $# -ge 2 ] || die "$1 needs a value"
    case $1 in
      --namespace) RUN_NAMESPACE=$2 ;;
      --env-file) RUN_ENV_FILE=$2 ;;
      --kind | --model-kind) RUN_ARGS+=(--model-kind "$(model_kind "$2")") ;;
      --model-pvc) RUN_MODEL_PVC=$2 ;;
      *) RUN_ARGS+=("$1" "$2") ;;
    esac
    shift 2
  done
}

# load_run_env DEFAULT_FILE: read --env-file (which must exist), else DEFAULT_FILE when present; the
# namespace defaults to NAMESPACE from it, else modelpipe.
load_run_env() {
  if [ -n "$RUN_ENV_FILE" ]; then
    load_env "$RUN_ENV_FILE"
  elif [ -f "$1" ]; then
    load_env "$1"
  fi
  if [ -n "$RUN_NAMESPACE" ]; then
    require_namespace --namespace "$RUN_NAMESPACE"
  else
    RUN_NAMESPACE=$(env_value NAMESPACE modelpipe)
    require_namespace NAMESPACE "$RUN_NAMESPACE"
  fi
}

# start_run ROOT PIPELINE [RENDERER OPTIONS...] -- [--PARAM VALUE...]: render the PipelineRun in
# RUN_NAMESPACE (render_run). --dry-run prints it; otherwise create it, print its name and, with
# --follow, wait.
start_run() {
  local root=$1 pipeline=$2 manifest cli run
  shift 2
  manifest=$(render_run "$root" "$pipeline" "$RUN_NAMESPACE" "$@")
  if $RUN_DRY_RUN; then
    echo "$manifest"
    return 0
  fi
  cli=$(kube_cli)
  run=$(create_run "$cli" "$RUN_NAMESPACE" "$manifest")
  echo "$run"
  if $RUN_FOLLOW; then
    follow_run "$cli" "$RUN_NAMESPACE" "${run##*/}"
  else
    log "follow: tkn pipelinerun logs ${run##*/} -f -n $RUN_NAMESPACE (or kubectl get $run -n $RUN_NAMESPACE -w)"
  fi
}

# kube_cli: oc when present (OpenShift), else kubectl.
kube_cli() {
  if command -v oc >/dev/null 2>&1; then
    echo oc
  elif command -v kubectl >/dev/null 2>&1; then
    echo kubectl
  else
    die "neither oc nor kubectl is installed (fix: install one and log in to the cluster)"
  fi
}

# create_run CLI NAMESPACE MANIFEST: create the PipelineRun, print its name (pipelinerun.tekton.dev/NAME).
create_run() {
  local cli=$1 namespace=$2 manifest=$3
  "$cli" create -n "$namespace" -o name -f - <<<"$manifest"
}

# follow_run CLI NAMESPACE NAME: stream logs with tkn when present, wait for the outcome, print the
# results; return 0 only when the run succeeded.
follow_run() {
  local cli=$1 namespace=$2 name=$3 status reason
  if command -v tkn >/dev/null 2>&1; then
    tkn pipelinerun logs "$name" -n "$namespace" -f || true
  else
    log "tkn not found: polling status (fix for live logs: install tkn)"
  fi
  while :; do
    status=$("$cli" get pipelinerun "$name" -n "$namespace" \
      -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].status}')
    [ "$status" = True ] || [ "$status" = False ] && break
    sleep 10
  done
  reason=$("$cli" get pipelinerun "$name" -n "$namespace" \
    -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].reason}')
  "$cli" get pipelinerun "$name" -n "$namespace" \
    -o jsonpath='{range .status.results[*]}{.name}: {.value}{"\n"}{end}'
  log "pipelinerun/$name: $reason"
  [ "$status" = True ]
}
