#!/usr/bin/env bash
# Install modelpipe on a cluster: Secrets from .env, the gitops overlay, monitoring when the Prometheus
# Operator is there, and one build-images run so a fresh cluster needs no pre-published image.
# Re-run it after that run succeeded to pin both images by digest. Idempotent; never prompts.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=gitops/scripts/lib.sh
source "$here/gitops/scripts/lib.sh"

usage() {
  cat <<'USAGE'
usage: ./deploy.sh [--overlay openshift|kubernetes] [--dry-run] [--env-file FILE] [--no-build]

  --overlay     gitops/overlays/NAME to apply (default: openshift when `oc` is installed, else kubernetes)
  --dry-run     print every manifest it would apply (Secret values masked) and the build-images run;
                needs no cluster
  --env-file    settings file (default: .env next to this script; see .env.template)
  --no-build    do not start the build-images pipeline

examples:
  ./deploy.sh --dry-run
  ./deploy.sh --overlay kubernetes
USAGE
}

# Keys every install needs; the optional ones (HF_TOKEN, HF_ENDPOINT, MODEL_REGISTRY_TOKEN,
# REGISTRY_AUTH_FILE, MODEL_REGISTRY_AUTHOR, MODEL_REGISTRY_TIMEOUT, GIT_REVISION) only create their
# Secret or setting when set.
REQUIRED_KEYS=(NAMESPACE AWS_S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION AWS_S3_BUCKET
  MODEL_REGISTRY_URL TOOLS_IMAGE RUNTIME_IMAGE_REPO GIT_URL)
# The Tasks' default data connection; its Secret name comes from modelpipe's one naming rule.
DATA_CONNECTION=modelpipe
DATA_CONNECTION_KEYS=(AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_S3_ENDPOINT AWS_DEFAULT_REGION AWS_S3_BUCKET)
# KServe's storage initializer resolves an InferenceService's storage.key in this Secret. OpenShift AI
# generates it from the data connection; on plain Kubernetes deploy.sh writes our entry (keyed by the
# data connection Secret's name, the storage.key modelpipe deploy sets).
STORAGE_CONFIG_SECRET=storage-config
HF_TOKEN_SECRET=modelpipe-hf-token
REGISTRY_TOKEN_SECRET=modelpipe-registry-token
REGISTRY_AUTH_SECRET=modelpipe-registry-auth
REQUIRED_CRDS=(tasks.tekton.dev pipelines.tekton.dev pipelineruns.tekton.dev
  servingruntimes.serving.kserve.io inferenceservices.serving.kserve.io)

overlay=""
dry_run=false
build=true
env_file="$here/.env"
while [ $# -gt 0 ]; do
  case $1 in
    --overlay)
      [ $# -ge 2 ] || die "--overlay needs a value (openshift or kubernetes)"
      overlay=$2
      shift 2
      ;;
    --overlay=*) overlay=${1#*=}; shift ;;
    --dry-run) dry_run=true; shift ;;
    --env-file)
      [ $# -ge 2 ] || die "--env-file needs a path"
      env_file=$2
      shift 2
      ;;
    --env-file=*) env_file=${1#*=}; shift ;;
    --no-build) build=false; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
if [ -z "$overlay" ]; then
  if command -v oc >/dev/null 2>&1; then overlay=openshift; else overlay=kubernetes; fi
fi
case $overlay in
  openshift | kubernetes) ;;
  *) die "--overlay must be openshift or kubernetes, got '$overlay'" ;;
esac

load_env "$env_file"
require_env "${REQUIRED_KEYS[@]}"
DATA_CONNECTION_SECRET=$(modelpipe_module "$here" install_manifests data-connection-secret "$DATA_CONNECTION")
namespace=$(env_value NAMESPACE)
require_namespace NAMESPACE "$namespace"
tools_image=$(env_value TOOLS_IMAGE)
runtime_repo=$(env_value RUNTIME_IMAGE_REPO)
[[ ${tools_image##*/} == *:* && $tools_image != *:latest ]] ||
  die "TOOLS_IMAGE must be REPO:TAG with a fixed tag (not latest), got '$tools_image'"
[[ ${runtime_repo##*/} != *:* && $runtime_repo != *@* ]] || die "RUNTIME_IMAGE_REPO must be a repository without tag or digest, got '$runtime_repo'"
registry_auth_file=$(env_value REGISTRY_AUTH_FILE)
if [ -n "$registry_auth_file" ] && [[ $registry_auth_file != /* ]]; then
  registry_auth_file="$(cd "$(dirname "$env_file")" && pwd)/$registry_auth_file"
fi
if [ -n "$registry_auth_file" ] && [ ! -r "$registry_auth_file" ]; then
  die "REGISTRY_AUTH_FILE: cannot read $registry_auth_file (fix: point it at a docker config JSON)"
fi

if $dry_run; then
  cli=kubectl
  command -v kubectl >/dev/null 2>&1 || cli=oc
else
  cli=$(kube_cli)
  "$cli" auth can-i create pipelineruns.tekton.dev -n "$namespace" >/dev/null 2>&1 ||
    "$cli" auth can-i create namespaces >/dev/null 2>&1 ||
    die "cannot reach the cluster or lacks rights (fix: $cli login / check the kubeconfig context)"
fi

# wait_for_crds: poll until every CRD exists and is Established (operators install them asynchronously).
wait_for_crds() {
  local crd deadline=$((SECONDS + 600))
  for crd in "${REQUIRED_CRDS[@]}"; do
    until "$cli" get crd "$crd" >/dev/null 2>&1; do
      [ $SECONDS -lt $deadline ] ||
        die "CRD $crd not found (fix: install OpenShift Pipelines/Tekton and OpenShift AI/KServe)"
      sleep 5
    done
    "$cli" wait --for=condition=Established --timeout=300s "crd/$crd" >/dev/null
  done
  log "CRDs present: ${REQUIRED_CRDS[*]}"
}

# pinned_digests: "TOOLS_IMAGE_DIGEST|RUNTIME_IMAGE_DIGEST" of the newest succeeded build-images run,
# in one query ("" when there is none).
pinned_digests() {
  local query='{range .items[?(@.status.conditions[0].status=="True")]}'
  query+='{.status.results[?(@.name=="TOOLS_IMAGE_DIGEST")].value}|'
  query+='{.status.results[?(@.name=="RUNTIME_IMAGE_DIGEST")].value}{"\n"}{end}'
  "$cli" get pipelineruns -n "$namespace" -l modelpipe.io/pipeline=build-images \
    --sort-by=.metadata.creationTimestamp -o jsonpath="$query" 2>/dev/null | tail -n 1
}

# write_kustomization DIR TOOLS_DIGEST RUNTIME_DIGEST: the overlay plus this cluster's namespace, images
# and ConfigMap values, and DIR/monitoring; built as YAML data by modelpipe.install_manifests.
write_kustomization() {
  modelpipe_module "$here" install_manifests kustomization "$1" --root "$here" --overlay "$overlay" \
    --namespace "$namespace" --tools-image "$tools_image" --tools-digest "$2" \
    --runtime-repo "$runtime_repo" --runtime-digest "$3" \
    --config "MODEL_REGISTRY_URL=$(env_value MODEL_REGISTRY_URL)" \
    --config "MODEL_REGISTRY_AUTHOR=$(env_value MODEL_REGISTRY_AUTHOR modelpipe)" \
    --config "MODEL_REGISTRY_TIMEOUT=$(env_value MODEL_REGISTRY_TIMEOUT 30)" \
    --config "AWS_S3_ENDPOINT=$(env_value AWS_S3_ENDPOINT)" --config "AWS_S3_BUCKET=$(env_value AWS_S3_BUCKET)" \
    --config "HF_ENDPOINT=$(env_value HF_ENDPOINT)"
}

# secret_manifest NAME TYPE KEY=FILE...: a Secret built by kubectl from files (values never on argv).
secret_manifest() {
  local name=$1 type=$2
  shift 2
  local args=() pair
  for pair in "$@"; do args+=("--from-file=$pair"); done
  # kubectl builds the manifest locally (--dry-run=client): no cluster needed, values read from files.
  "$cli" create secret "$type" "$name" -n "$namespace" "${args[@]}" --dry-run=client -o yaml
}

# storage_config_json: the data connection in the JSON layout of a KServe storage-config entry, built by
# modelpipe.install_manifests (json.dumps); the values travel in its environment, never on argv.
storage_config_json() {
  AWS_ACCESS_KEY_ID=$(env_value AWS_ACCESS_KEY_ID) AWS_SECRET_ACCESS_KEY=$(env_value AWS_SECRET_ACCESS_KEY) \
    AWS_S3_ENDPOINT=$(env_value AWS_S3_ENDPOINT) AWS_DEFAULT_REGION=$(env_value AWS_DEFAULT_REGION) \
    AWS_S3_BUCKET=$(env_value AWS_S3_BUCKET) modelpipe_module "$here" install_manifests storage-config-entry
}

# secrets_manifest DIR: every Secret .env asks for, as one multi-document YAML on stdout.
secrets_manifest() {
  local dir=$1 key files=()
  for key in "${DATA_CONNECTION_KEYS[@]}"; do
    printf '%s' "$(env_value "$key")" >"$dir/$key"
    files+=("$key=$dir/$key")
  done
  secret_manifest "$DATA_CONNECTION_SECRET" generic "${files[@]}"
  if [ "$overlay" = kubernetes ]; then
    storage_config_json >"$dir/storage-config.json"
    echo "---"
    secret_manifest "$STORAGE_CONFIG_SECRET" generic "$DATA_CONNECTION_SECRET=$dir/storage-config.json"
  fi
  if [ -n "$(env_value HF_TOKEN)" ]; then
    printf '%s' "$(env_value HF_TOKEN)" >"$dir/HF_TOKEN"
    echo "---"
    secret_manifest "$HF_TOKEN_SECRET" generic "HF_TOKEN=$dir/HF_TOKEN"
  fi
  if [ -n "$(env_value MODEL_REGISTRY_TOKEN)" ]; then
    printf '%s' "$(env_value MODEL_REGISTRY_TOKEN)" >"$dir/MODEL_REGISTRY_TOKEN"
    echo "---"
    secret_manifest "$REGISTRY_TOKEN_SECRET" generic "MODEL_REGISTRY_TOKEN=$dir/MODEL_REGISTRY_TOKEN"
  fi
  if [ -n "$registry_auth_file" ]; then
    echo "---"
    secret_manifest "$REGISTRY_AUTH_SECRET" docker-registry ".dockerconfigjson=$registry_auth_file"
  fi
}

# mask_secret_values: replace every value under data: with <redacted> (for printing).
mask_secret_values() {
  awk '
    /^data:$/ { in_data = 1; print; next }
    in_data && /^  [^ ]/ { sub(/: .*/, ": <redacted>"); print; next }
    { in_data = 0; print }
  '
}

work="$here/.local/deploy"
secret_dir=$(mktemp -d)
chmod 700 "$secret_dir"
trap 'rm -rf "$secret_dir"' EXIT

tools_digest=""
runtime_digest=""
if ! $dry_run; then
  wait_for_crds
  IFS='|' read -r tools_digest runtime_digest <<<"$(pinned_digests)"
  [ -z "$tools_digest" ] || log "pinning images to the digests of the last build-images run"
fi
write_kustomization "$work" "$tools_digest" "$runtime_digest"
rendered=$("$cli" kustomize "$work")
secrets=$(secrets_manifest "$secret_dir")
# Without credentials the optional registry-auth workspace stays unbound (an empty Secret binds nothing).
build_run=$(render_run "$here" build-images "$namespace" \
  --secret-workspace "registry-auth=${registry_auth_file:+$REGISTRY_AUTH_SECRET}" -- \
  --git-url "$(env_value GIT_URL)" --git-revision "$(env_value GIT_REVISION main)" \
  --tools-image "$tools_image" --image "$runtime_repo")

if $dry_run; then
  echo "# deploy.sh --dry-run: overlay $overlay, namespace $namespace (nothing was applied)"
  echo "# 1. would wait for CRDs: ${REQUIRED_CRDS[*]}"
  echo "# 2. would apply (server-side, field manager modelpipe-deploy):"
  echo "$rendered"
  echo "---"
  echo "# 3. would apply these Secrets (server-side, field manager modelpipe-secrets; values masked):"
  mask_secret_values <<<"$secrets"
  echo "---"
  echo "# 4. would apply gitops/monitoring when monitoring.coreos.com CRDs exist:"
  "$cli" kustomize "$work/monitoring"
  if $build; then
    echo "---"
    echo "# 5. would create this PipelineRun unless a build-images run exists in $namespace:"
    echo "$build_run"
  fi
  exit 0
fi

"$cli" apply --server-side --force-conflicts --field-manager=modelpipe-deploy -f - <<<"$rendered" >&2
"$cli" apply --server-side --force-conflicts --field-manager=modelpipe-secrets -f - <<<"$secrets" >/dev/null
[ "$overlay" != kubernetes ] || storage_config_note=" $STORAGE_CONFIG_SECRET (entry $DATA_CONNECTION_SECRET)"
log "Secrets applied: $DATA_CONNECTION_SECRET${storage_config_note:-}${ENV_VALUES[HF_TOKEN]:+ $HF_TOKEN_SECRET}${ENV_VALUES[MODEL_REGISTRY_TOKEN]:+ $REGISTRY_TOKEN_SECRET}${registry_auth_file:+ $REGISTRY_AUTH_SECRET}"
if "$cli" get crd podmonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com >/dev/null 2>&1; then
  "$cli" kustomize "$work/monitoring" | "$cli" apply --server-side --field-manager=modelpipe-deploy -f - >&2
else
  log "Prometheus Operator CRDs not found: skipped gitops/monitoring"
fi

if $build; then
  existing=$("$cli" get pipelineruns -n "$namespace" -l modelpipe.io/pipeline=build-images -o name)
  if [ -n "$existing" ]; then
    log "build-images already ran ($(wc -l <<<"$existing") run(s)); not starting another"
  else
    run=$(create_run "$cli" "$namespace" "$build_run")
    log "started $run (follow: tkn pipelinerun logs ${run##*/} -f -n $namespace); re-run deploy.sh after it succeeds to pin the image digests"
  fi
fi
log "done: overlay $overlay applied to namespace $namespace"
