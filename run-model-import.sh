#!/usr/bin/env bash
# Start the model-import pipeline: on the cluster (a PipelineRun from pipelineruns/model-import.yaml) or,
# with --local, on this machine against embedded stand-ins (`modelpipe local import`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
usage: ./run-model-import.sh [--kind llm] [--model ORG/REPO] [--revision R] [--name N] [--version V]
                             [SERVING FLAGS] [--param KEY=VALUE]... [--namespace NS] [--env-file FILE]
                             [--follow] [--dry-run] [--local [ARGS...]]

  --model-kind text-to-image (default) or text-generation; --kind llm is its shorthand
  --model      Hugging Face repository ORG/REPO, or a full hf:// / file:// source
               (default stabilityai/sd-turbo, or Qwen/Qwen2.5-0.5B-Instruct for text-generation)
  --revision   branch, tag or commit to pin (default: main)
  --name       registered model name and InferenceService name (default: from --model)
  --version    model version name (default: v1)
  --param      any other model-import param, e.g. --param build-image=true (repeatable)

serving flags (each sets the model-import param of the same name; README "Serving options"):
  --deploy-mode RawDeployment|Serverless   --min-replicas N   --max-replicas N
  --scale-metric cpu|memory|concurrency|rps   --scale-target N   --cpu Q   --memory Q
  --gpus N (param deploy-gpus)   --gpu-resource NAME   --node-selector LABEL=VALUE,...
  --tolerations YAML   --service-account SA   --expose true|false   --auth true|false
  --storage s3|pvc   --canary-percent 1-100
  --model-pvc CLAIM  bind the model workspace to this existing claim (needed by --storage pvc: the
                     InferenceService then serves pvc://CLAIM/model, which the download filled)
  --namespace  namespace of the PipelineRun (default: NAMESPACE from .env, else modelpipe)
  --env-file   settings file that must exist (default: .env next to this script, when present);
               only non-secret keys are read: NAMESPACE, AWS_S3_BUCKET, GIT_URL, GIT_REVISION,
               RUNTIME_IMAGE_REPO, REGISTRY_AUTH_FILE
  --follow     stream the logs (tkn when installed), wait, print the results; exit 1 if the run failed
  --dry-run    print the PipelineRun instead of creating it (needs no cluster)
  --local      run everything on this machine instead: all other arguments go to `modelpipe local import`

examples:
  ./run-model-import.sh --model stabilityai/sd-turbo --revision main --version v1 --follow
  ./run-model-import.sh --dry-run --param deploy=false
  ./run-model-import.sh --min-replicas 2 --max-replicas 4 --gpus 1 \
      --node-selector nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB \
      --tolerations '[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]' --expose true --auth true
  ./run-model-import.sh --kind llm --model Qwen/Qwen2.5-0.5B-Instruct --param eval-limit=200 --follow
  ./run-model-import.sh --local
  ./run-model-import.sh --local --kind llm      # tiny LLM -> S3 -> registry -> vLLM -> lm-eval -> guidellm
USAGE
}

# shellcheck source=gitops/scripts/lib.sh
source "$here/gitops/scripts/lib.sh"
run_local_if_requested "$here" import "$@"

model=""
kind=text-to-image
revision=""
name=""
version=v1
# Serving choices: flag --X sets pipeline param X (--gpus sets deploy-gpus); modelpipe deploy checks them.
SERVING_FLAGS="--deploy-mode --min-replicas --max-replicas --scale-metric --scale-target --cpu --memory --gpus
  --gpu-resource --node-selector --tolerations --service-account --expose --auth --storage --canary-percent"
serving_params=()
set_flag() {
  case $1 in
    --model) model=$2 ;;
    --kind | --model-kind) kind=$(model_kind "$2") ;;
    --revision) revision=$2 ;;
    --name) name=$2 ;;
    --version) version=$2 ;;
    --gpus) serving_params+=("deploy-gpus=$2") ;;
    --model-pvc) serving_params+=("workspace:model=pvc:$2") ;;
    *) serving_params+=("${1#--}=$2") ;;
  esac
}
parse_run_args "--model --kind --model-kind --revision --name --version --model-pvc ${SERVING_FLAGS//$'\n'/ }" \
  set_flag "$@"
if [[ " ${serving_params[*]-} " == *" storage=pvc "* && " ${serving_params[*]-} " != *" workspace:model=pvc:"* ]]; then
  die "--storage pvc needs --model-pvc CLAIM (a workspace volumeClaimTemplate is deleted with the run)"
fi
if [ -z "$model" ]; then
  if [ "$kind" = text-generation ]; then model=Qwen/Qwen2.5-0.5B-Instruct; else model=stabilityai/sd-turbo; fi
fi

if [[ $model == *://* ]]; then
  source_uri=$model
else
  [[ $model =~ ^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
    die "--model must be ORG/REPO (or hf://ORG/REPO, file:///DIR), got '$model'"
  source_uri="hf://$model"
fi
if [ -z "$name" ]; then
  # Registered model and InferenceService name: the repository part as a DNS-1035 label.
  name=$(tr '[:upper:]' '[:lower:]' <<<"${model##*/}" | tr -c 'a-z0-9\n' '-' | sed 's/^[^a-z]*//; s/-*$//')
  name=${name:0:40}
fi
require_dns_label --name "$name"

load_run_env "$here/.env"
params=("model-kind=$kind" "model-source=$source_uri" "model-name=$name" "version-name=$version"
  "deploy-name=$name"
  ${serving_params[@]+"${serving_params[@]}"})
[ -z "$revision" ] || params+=("model-revision=$revision")
[ -z "$(env_value AWS_S3_BUCKET)" ] || params+=("s3-bucket=$(env_value AWS_S3_BUCKET)")
[ -z "$(env_value GIT_URL)" ] || params+=("git-url=$(env_value GIT_URL)")
[ -z "$(env_value GIT_REVISION)" ] || params+=("git-revision=$(env_value GIT_REVISION)")
[ -z "$(env_value RUNTIME_IMAGE_REPO)" ] || params+=("runtime-image-repo=$(env_value RUNTIME_IMAGE_REPO)")
[ -z "$(env_value REGISTRY_AUTH_FILE)" ] || params+=("workspace:registry-auth=secret:modelpipe-registry-auth")
start_run "$here/pipelineruns/model-import.yaml" "${params[@]}"
