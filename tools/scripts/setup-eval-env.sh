#!/usr/bin/env bash
# Create the LLM evaluation environment (lm-eval with its API models, guidellm) in its own venv, apart from
# .venv: their pins (datasets, pyarrow, click, ...) must not move the versions modelpipe is tested with.
# `modelpipe evaluate` and `modelpipe benchmark --model-kind text-generation` run lm_eval and guidellm from
# it as subprocesses (MODELPIPE_EVAL_BIN=VENV/bin). Idempotent: a stamp records the constraints installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${1:-$here/.venv-eval}"
constraints="$here/tools/eval-constraints.txt"
stamp="$venv/.installed"
# torch is pinned in the same pip command as its dependents, so no CUDA wheel is pulled in.
requirements=("lm-eval[api]==0.4.13" "guidellm==0.8.1" "transformers" "torch==2.13.0")

wanted="$(sha256sum "$constraints" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x "$venv/bin/lm_eval" ] && [ -x "$venv/bin/guidellm" ]; then
  exit 0
fi
echo "creating the evaluation environment in $venv (lm-eval, guidellm; a few minutes the first time)" >&2
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -c "$constraints" "${requirements[@]}"
for forbidden in torchvision torchaudio; do
  if "$venv/bin/pip" show --quiet "$forbidden" 2>/dev/null; then
    echo "$forbidden must not be installed in $venv (it pulls CUDA libraries)" >&2
    exit 1
  fi
done
"$venv/bin/lm_eval" --help >/dev/null
"$venv/bin/guidellm" --help >/dev/null
printf '%s' "$wanted" >"$stamp"
