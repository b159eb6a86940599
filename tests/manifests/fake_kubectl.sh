#!/usr/bin/env bash
# Stand-in for kubectl in the deploy.sh tests: renders and builds Secrets with the real kubectl (offline),
# records every other call in $FAKE_LOG and the manifests piped to apply/create in $FAKE_DIR.
set -euo pipefail
printf '%s\n' "$*" >>"$FAKE_LOG"
case "$1" in
  kustomize) exec "$REAL_KUBECTL" "$@" ;;
  auth) exit 0 ;;
  wait) exit 0 ;;
  get)
    case "$2" in
      crd) [[ "$*" != *monitoring.coreos.com* ]] || [ "${FAKE_MONITORING:-false}" = true ] ;;
      pipelineruns)
        if [[ "$*" == *--sort-by* ]]; then
          # The newest succeeded run's "TOOLS_IMAGE_DIGEST|RUNTIME_IMAGE_DIGEST" line.
          [ -z "${FAKE_TOOLS_DIGEST:-}${FAKE_RUNTIME_DIGEST:-}" ] ||
            printf '%s|%s\n' "${FAKE_TOOLS_DIGEST:-}" "${FAKE_RUNTIME_DIGEST:-}"
        else
          printf '%s' "${FAKE_BUILD_RUNS:-}"
        fi
        ;;
      *) exit 1 ;;
    esac
    ;;
  create)
    if [ "$2" = secret ]; then
      exec "$REAL_KUBECTL" "$@"
    fi
    n=$(find "$FAKE_DIR" -name 'create-*.yaml' | wc -l)
    cat >"$FAKE_DIR/create-$n.yaml"
    echo "pipelinerun.tekton.dev/build-images-x7k2p"
    ;;
  apply)
    n=$(find "$FAKE_DIR" -name 'apply-*.yaml' | wc -l)
    cat >"$FAKE_DIR/apply-$n.yaml"
    ;;
  *) echo "fake kubectl: unexpected call: $*" >&2; exit 2 ;;
esac
