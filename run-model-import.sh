#!/usr/bin/env bash
# Start the model-import pipeline: on the cluster (a PipelineRun from pipelineruns/model-import.yaml) or,
# with --local, on this machine against embedded stand-ins (`modelpipe local import`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
usage: ./run-model-import.sh [--model ORG/REPO] [--revision R] [--name N] [--version V]
                             [--param KEY=VALUE]... [--namespace NS] [--env-file FILE]
                             [--follow] [--dry-run] [--local [ARGS...]]

  --model      Hugging Face repository ORG/REPO, or a full hf:// / file:// source
               (default stabilityai/sd-turbo)
  --revision   branch, tag or commit to pin (default: main)
  --name       registered model name and InferenceService name (default: from --model)
  --version    model version name (default: v1)
  --param      any other model-import param, e.g. --param build-image=true (repeatable)
  --namespace  namespace of the PipelineRun (default: NAMESPACE from .env, else modelpipe)
  --env-file   settings file (default: .env next to this script); only non-secret keys are read:
               NAMESPACE, AWS_S3_BUCKET, GIT_URL, GIT_REVISION, RUNTIME_IMAGE_REPO, REGISTRY_AUTH_FILE
  --follow     stream the logs (tkn when installed), wait, print the results; exit 1 if the run failed
  --dry-run    print the PipelineRun instead of creating it (needs no cluster)
  --local      run everything on this machine instead: all other arguments go to `modelpipe local import`

examples:
  ./run-model-import.sh --model stabilityai/sd-turbo --revision main --version v1 --follow
  ./run-model-import.sh --dry-run --param deploy=false
  ./run-model-import.sh --local
USAGE
}

for arg in "$@"; do
  if [ "$arg" = --local ]; then
    rest=()
    for a in "$@"; do [ "$a" = --local ] || rest+=("$a"); done
    make -s -C "$here" venv
    exec "$here/.venv/bin/modelpipe" local import "${rest[@]}"
  fi
done

# shellcheck source=gitops/scripts/lib.sh
source "$here/gitops/scripts/lib.sh"

model=stabilityai/sd-turbo
revision=""
name=""
version=v1
namespace=""
env_file="$here/.env"
follow=false
dry_run=false
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --model | --revision | --name | --version | --param | --namespace | --env-file)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $1 in
        --model) model=$2 ;;
        --revision) revision=$2 ;;
        --name) name=$2 ;;
        --version) version=$2 ;;
        --param)
          [[ $2 == ?*=* ]] || die "--param needs KEY=VALUE, got '$2'"
          extra+=("$2")
          ;;
        --namespace) namespace=$2 ;;
        --env-file) env_file=$2 ;;
      esac
      shift 2
      ;;
    --follow) follow=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

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
[[ $name =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] ||
  die "--name must be a DNS-1035 label (lowercase letters, digits, '-'), got '$name'"

[ -f "$env_file" ] && load_env "$env_file"
namespace=${namespace:-$(env_value NAMESPACE modelpipe)}

params=("model-source=$source_uri" "model-name=$name" "version-name=$version" "deploy-name=$name")
[ -z "$revision" ] || params+=("model-revision=$revision")
[ -z "$(env_value AWS_S3_BUCKET)" ] || params+=("s3-bucket=$(env_value AWS_S3_BUCKET)")
[ -z "$(env_value GIT_URL)" ] || params+=("git-url=$(env_value GIT_URL)")
[ -z "$(env_value GIT_REVISION)" ] || params+=("git-revision=$(env_value GIT_REVISION)")
[ -z "$(env_value RUNTIME_IMAGE_REPO)" ] || params+=("runtime-image-repo=$(env_value RUNTIME_IMAGE_REPO)")
[ -z "$(env_value REGISTRY_AUTH_FILE)" ] || params+=("workspace:registry-auth=secret:modelpipe-registry-auth")
params+=("${extra[@]}")

manifest=$(render_pipelinerun "$here/pipelineruns/model-import.yaml" "$namespace" "${params[@]}")
if $dry_run; then
  echo "$manifest"
  exit 0
fi

cli=$(kube_cli)
run=$(create_run "$cli" "$namespace" "$manifest")
echo "$run"
if $follow; then
  follow_run "$cli" "$namespace" "${run##*/}"
else
  log "follow: tkn pipelinerun logs ${run##*/} -f -n $namespace (or kubectl get $run -n $namespace -w)"
fi
