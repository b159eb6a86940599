#!/usr/bin/env bash
# Install the Debian tools the tests drive for real, only when one is missing.
set -euo pipefail

declare -A package_for=(
  [buildah]=buildah
  [skopeo]=skopeo
  [docker-registry]=docker-registry
  [shellcheck]=shellcheck
  [crun]=crun
)
missing=()
for tool in "${!package_for[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_for[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "missing system tools: ${missing[*]} (fix: apt-get install ${missing[*]} as root)" >&2
  exit 1
fi
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
echo "installing system tools: ${missing[*]}" >&2
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
