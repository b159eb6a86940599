#!/usr/bin/env bash
# Shared by deploy.sh, run-model-import.sh and run-model-testing.sh: .env parsing (never printed),
# YAML quoting, PipelineRun rendering from the pipelineruns/ examples, creating and following runs.
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

# yaml_quote VALUE: a double-quoted YAML scalar (JSON string rules); rejects control characters.
yaml_quote() {
  local value=$1
  if [[ $value == *[$'\001'-$'\037']* ]]; then
    die "value for a YAML field contains a control character or newline"
  fi
  value=${value//\\/\\\\}
  value=${value//\"/\\\"}
  printf '"%s"' "$value"
}

# render_pipelinerun EXAMPLE NAMESPACE [NAME=VALUE...]: the example PipelineRun with its params
# replaced or added (values quoted) and metadata.namespace set. A param "workspace:NAME=secret:SECRET"
# adds a secret-backed workspace binding, "workspace:NAME=pvc:CLAIM" binds NAME to an existing claim
# (replacing the example's binding of NAME).
render_pipelinerun() {
  local example=$1 namespace=$2
  shift 2
  local pair name value quoted params_file workspaces_file rebound=","
  params_file=$(mktemp)
  workspaces_file=$(mktemp)
  # Params of the example first (their YAML scalars as written), then the overrides in order.
  awk '
    /^  params:$/ { inside = 1; next }
    inside && /^  [^ ]/ { inside = 0 }
    inside && /^    - name: / { name = $3 }
    inside && /^      value: / { sub(/^      value: /, ""); print name "\t" $0 }
  ' "$example" >"$params_file"
  for pair in "$@"; do
    name=${pair%%=*}
    value=${pair#*=}
    if [[ $name == workspace:* && $value == pvc:* ]]; then
      [[ ${value#pvc:} =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || die "claim name '${value#pvc:}' is not a DNS name"
      printf '    - name: %s\n      persistentVolumeClaim:\n        claimName: %s\n' "${name#workspace:}" \
        "${value#pvc:}" >>"$workspaces_file"
      rebound+="${name#workspace:},"
      continue
    fi
    if [[ $name == workspace:* ]]; then
      printf '    - name: %s\n      secret:\n        secretName: %s\n' "${name#workspace:}" "${value#secret:}" \
        >>"$workspaces_file"
      continue
    fi
    [[ $name =~ ^[a-z][a-z0-9-]*$ ]] || die "param name '$name' is not kebab-case"
    quoted=$(yaml_quote "$value")
    awk -F '\t' -v n="$name" '$1 != n' "$params_file" >"$params_file.new"
    printf '%s\t%s\n' "$name" "$quoted" >>"$params_file.new"
    mv "$params_file.new" "$params_file"
  done
  awk -v ns="$namespace" -v pf="$params_file" -v wf="$workspaces_file" -v rebound="$rebound" '
    function flush_workspaces(   line) {
      while ((getline line < wf) > 0) print line
      close(wf)
    }
    /^metadata:$/ { print; print "  namespace: " ns; next }
    /^  namespace: / && !in_spec { next }
    /^spec:$/ { in_spec = 1 }
    /^  params:$/ {
      print
      while ((getline line < pf) > 0) {
        split(line, kv, "\t")
        print "    - name: " kv[1]
        print "      value: " substr(line, length(kv[1]) + 2)
      }
      close(pf)
      skipping = 1
      next
    }
    skipping && /^  [^ ]/ { skipping = 0 }
    skipping { next }
    /^  workspaces:$/ { in_ws = 1; print; next }
    in_ws && /^  [^ ]/ { flush_workspaces(); in_ws = 0; dropping = 0 }
    in_ws && /^    - name: / { dropping = index(rebound, "," $3 ",") > 0 }
    in_ws && dropping { next }
    { print }
    END { if (in_ws) flush_workspaces() }
  ' "$example"
  rm -f "$params_file" "$workspaces_file"
}

# require_dns_label FLAG VALUE: die unless VALUE is a DNS-1035 label (InferenceService and model names).
require_dns_label() {
  [[ $2 =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] ||
    die "$1 must be a DNS-1035 label (lowercase letters, digits, '-'), got '$2'"
}

# require_namespace WHAT VALUE: die unless VALUE is a namespace name (DNS-1123 label); WHAT names its source.
require_namespace() {
  [[ $2 =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ && ${#2} -le 63 ]] ||
    die "$1 must be a DNS label (lowercase letters, digits, '-'), got '$2'"
}

# --- Run scripts (run-model-import.sh, run-model-testing.sh) ---------------------------------------
# Flags both scripts take, set by parse_run_args; RUN_PARAMS holds the --param KEY=VALUE pairs.
RUN_NAMESPACE=""
RUN_ENV_FILE=""
RUN_FOLLOW=false
RUN_DRY_RUN=false
RUN_PARAMS=()

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

# parse_run_args "VALUE_FLAGS" SET_FLAG ARGS...: parse the shared flags (--param, --namespace,
# --env-file, --follow, --dry-run, -h/--help) into RUN_*, and for each of the caller's own flags
# listed in VALUE_FLAGS call SET_FLAG FLAG VALUE. The caller defines usage().
parse_run_args() {
  local value_flags=" $1 " set_flag=$2
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      -h | --help) usage; exit 0 ;;
      --follow) RUN_FOLLOW=true; shift; continue ;;
      --dry-run) RUN_DRY_RUN=true; shift; continue ;;
    esac
    [[ $1 == --param || $1 == --namespace || $1 == --env-file || $value_flags == *" $1 "* ]] || {
      usage >&2
      die "unknown argument '$1'"
    }
    [ $# -ge 2 ] || die "$1 needs a value"
    case $1 in
      --param)
        [[ $2 == ?*=* ]] || die "--param needs KEY=VALUE, got '$2'"
        RUN_PARAMS+=("$2")
        ;;
      --namespace) RUN_NAMESPACE=$2 ;;
      --env-file) RUN_ENV_FILE=$2 ;;
      *) "$set_flag" "$1" "$2" ;;
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

# start_run EXAMPLE [NAME=VALUE...]: the example PipelineRun with these params, then the --param ones,
# in RUN_NAMESPACE. --dry-run prints it; otherwise create it, print its name and, with --follow, wait.
start_run() {
  local example=$1 manifest cli run
  shift
  manifest=$(render_pipelinerun "$example" "$RUN_NAMESPACE" "$@" "${RUN_PARAMS[@]}")
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
