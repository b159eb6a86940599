#!/usr/bin/env bash
# Start the model-import pipeline: on the cluster (a PipelineRun from pipelineruns/model-import.yaml) or,
# with --local, on this machine against embedded stand-ins (`modelpipe local import`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
usage: ./run-model-import.sh [--kind llm] [--source ORG/REPO|URI] [--revision R] [--model-name N]
                             [--version-name V] [--name ISVC] [--PARAM VALUE]... [--namespace NS]
                             [--env-file FILE] [--follow] [--dry-run] [--local [ARGS...]]

Every flag is a model-import param of the same name (pipelines/README.md lists them all), e.g.:
  --model-kind    text-to-image (default) or text-generation; --kind llm is its shorthand
  --source        Hugging Face repository ORG/REPO, or a full hf:// / file:// source
                  (default hf://stabilityai/sd-turbo, or Qwen/Qwen2.5-0.5B-Instruct for text-generation)
  --revision      branch, tag or commit to pin (default: the @REV in the source, else main)
  --model-name    registered model name (default: the repository name as a DNS label)
  --version-name  model version name (default: v1)
  --name          InferenceService name, a DNS-1035 label (default: the model name)
  --build true    also build and push the runtime image from git-url; --min-clip-score 20 adds a gate
  --model-pvc CLAIM  bind the model workspace to this existing claim (needed by --storage pvc: the
                  InferenceService then serves pvc://CLAIM/model, which the download filled)
  serving: --deploy-mode, --min-replicas, --max-replicas, --gpus, --node-selector, ... (README "Serving
                  options"); text-generation: --tasks, --limit, --gates
An empty value means the param's default. Settings of the script itself:
  --namespace  namespace of the PipelineRun (default: NAMESPACE from .env, else modelpipe)
  --env-file   settings file that must exist (default: .env next to this script, when present);
               only non-secret keys are read: NAMESPACE, AWS_S3_BUCKET (--s3-bucket), GIT_URL (--git-url),
               GIT_REVISION (--git-revision), RUNTIME_IMAGE_REPO (--image), REGISTRY_AUTH_FILE
  --follow     stream the logs (tkn when installed), wait, print the results; exit 1 if the run failed
  --dry-run    print the PipelineRun instead of creating it (needs no cluster)
  --local      run everything on this machine instead: all other arguments go to `modelpipe local import`

examples:
  ./run-model-import.sh --source stabilityai/sd-turbo --revision main --version-name v1 --follow
  ./run-model-import.sh --dry-run --deploy false
  ./run-model-import.sh --min-replicas 2 --max-replicas 4 --gpus 1 \
      --node-selector nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB --expose true --auth true
  ./run-model-import.sh --kind llm --source Qwen/Qwen2.5-0.5B-Instruct --limit 200 --follow
  ./run-model-import.sh --local
  ./run-model-import.sh --local --kind llm      # tiny LLM -> S3 -> registry -> vLLM -> lm-eval -> guidellm
USAGE
}

# shellcheck source=gitops/scripts/lib.sh
source "$here/gitops/scripts/lib.sh"
run_local_if_requested "$here" import "$@"
parse_run_args "$@"
load_run_env "$here/.env"
auth_file=$(env_value REGISTRY_AUTH_FILE)
# .env values first: a flag given on the command line overrides them; empty ones change nothing.
start_run "$here" model-import --secret-workspace "registry-auth=${auth_file:+modelpipe-registry-auth}" \
  --claim-workspace "model=$RUN_MODEL_PVC" -- \
  --s3-bucket "$(env_value AWS_S3_BUCKET)" --git-url "$(env_value GIT_URL)" \
  --git-revision "$(env_value GIT_REVISION)" --image "$(env_value RUNTIME_IMAGE_REPO)" "${RUN_ARGS[@]}"
