#!/usr/bin/env bash
# Start the model-testing pipeline for an already registered model version: on the cluster (a PipelineRun
# from pipelineruns/model-testing.yaml) or, with --local, on this machine (`modelpipe local test`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
usage: ./run-model-testing.sh --registered-model-id ID --model-version-id ID --model-uri s3://...
                              --name ISVC [--endpoint URL] [--PARAM VALUE]... [--namespace NS]
                              [--env-file FILE] [--follow] [--dry-run] [--local [ARGS...]]

Every flag is a model-testing param of the same name (pipelines/README.md lists them all), e.g.:
  --registered-model-id, --model-version-id
                  the version to test (REGISTERED_MODEL_ID / MODEL_VERSION_ID of a model-import run)
  --model-uri     s3:// URI of the version's model folder (MODEL_URI of the model-import run)
  --name          InferenceService name / served model name (a DNS-1035 label)
  --endpoint      benchmark this running endpoint instead of deploying (deploy defaults to false)
  --min-clip-score 20   a quality gate (the score is 100 x cosine similarity)
An empty value means the param's default. Settings of the script itself:
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
USAGE
}

# shellcheck source=gitops/scripts/lib.sh
source "$here/gitops/scripts/lib.sh"
run_local_if_requested "$here" test "$@"
parse_run_args "$@"
load_run_env "$here/.env"
start_run "$here" model-testing --require registered-model-id --require model-version-id \
  --require model-uri --require name -- "${RUN_ARGS[@]}"
