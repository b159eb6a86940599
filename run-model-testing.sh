#!/usr/bin/env bash
# Start the model-testing pipeline for an already registered model version: on the cluster (a PipelineRun
# from pipelineruns/model-testing.yaml) or, with --local, on this machine (`modelpipe local test`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
usage: ./run-model-testing.sh [--kind llm] --registered-model-id ID --model-version-id ID
                              --model-uri s3://...
                              --name N [--endpoint URL] [--param KEY=VALUE]... [--namespace NS]
                              [--env-file FILE] [--follow] [--dry-run] [--local [ARGS...]]

  --registered-model-id, --model-version-id
               the version to test (REGISTERED_MODEL_ID / MODEL_VERSION_ID of a model-import run)
  --model-uri  s3:// URI of the version's model folder (MODEL_URI of the model-import run)
  --name       InferenceService name / served model name
  --model-kind text-to-image (default) or text-generation; --kind llm is its shorthand
  --endpoint   benchmark this running endpoint instead of deploying (sets deploy=false)
  --param      any other model-testing param, e.g. --param min-clip-score=0.25 (repeatable)
  --namespace  namespace of the PipelineRun (default: NAMESPACE from .env, else modelpipe)
  --env-file   settings file that must exist (default: .env next to this script, when present);
               only NAMESPACE is read
  --follow     stream the logs (tkn when installed), wait, print the results; exit 1 if the run failed
  --dry-run    print the PipelineRun instead of creating it (needs no cluster)
  --local      run on this machine instead: all other arguments go to `modelpipe local test`

examples:
  ./run-model-testing.sh --registered-model-id 1 --model-version-id 2 \
      --model-uri s3://modelpipe/models/sd-turbo/v1 --name sd-turbo --follow
  ./run-model-testing.sh --local
  ./run-model-testing.sh --local --kind llm     # re-test the latest registered language model
USAGE
}

# shellcheck source=gitops/scripts/lib.sh
source "$here/gitops/scripts/lib.sh"
run_local_if_requested "$here" test "$@"

registered_model_id=""
model_version_id=""
model_uri=""
name=""
endpoint=""
kind=text-to-image
set_flag() {
  case $1 in
    --registered-model-id) registered_model_id=$2 ;;
    --model-version-id) model_version_id=$2 ;;
    --model-uri) model_uri=$2 ;;
    --name) name=$2 ;;
    --endpoint) endpoint=$2 ;;
    --kind | --model-kind) kind=$(model_kind "$2") ;;
  esac
}
parse_run_args "--registered-model-id --model-version-id --model-uri --name --endpoint --kind --model-kind" \
  set_flag "$@"

missing=()
[ -n "$registered_model_id" ] || missing+=(--registered-model-id)
[ -n "$model_version_id" ] || missing+=(--model-version-id)
[ -n "$model_uri" ] || missing+=(--model-uri)
[ -n "$name" ] || missing+=(--name)
[ ${#missing[@]} -eq 0 ] || die "missing required flags: ${missing[*]} (see --help)"
[[ $model_uri == s3://?* ]] || die "--model-uri must be an s3:// URI, got '$model_uri'"
require_dns_label --name "$name"

load_run_env "$here/.env"
params=("model-kind=$kind" "registered-model-id=$registered_model_id" "model-version-id=$model_version_id"
  "model-uri=$model_uri" "deploy-name=$name")
if [ -n "$endpoint" ]; then
  params+=("deploy=false" "endpoint=$endpoint")
fi
start_run "$here/pipelineruns/model-testing.yaml" "${params[@]}"
