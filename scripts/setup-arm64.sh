#!/usr/bin/env bash
# Sets up this x86-64 Debian 12 machine to run Tamp's arm64 edge build under
# user-mode emulation (pnpm test:arm64 runs it first; as root, or with sudo):
#  - qemu-user-static: qemu-aarch64-static runs arm64 Linux programs here;
#  - arm64 glibc, libstdc++ and the Vulkan loader through Debian multiarch
#    (--no-install-recommends matters: the recommended mesa-vulkan-drivers:arm64
#    would add ICD files that make every x86-64 Vulkan user print warnings);
#  - Node for arm64 and SwiftShader's arm64 Vulkan driver, by the install
#    steps the edge image shares (scripts/edge-arm64-install.sh), cached
#    under $TAMP_ARM64_CACHE (default ~/.cache/tamp-arm64).
# Idempotent: a second run installs nothing and downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -m)" != x86_64 ]; then
  echo "setup-arm64: this sets up arm64 emulation on an x86-64 machine (this is $(uname -m))" >&2
  exit 1
fi
sudo=''
if [ "$(id -u)" -ne 0 ]; then sudo='sudo'; fi
cache="${TAMP_ARM64_CACHE:-${HOME:-/root}/.cache/tamp-arm64}"

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

added=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
  added=1
fi
# time: GNU time, whose peak resident memory pnpm bench:edge reports.
packages=(qemu-user-static libc6:arm64 libstdc++6:arm64 time)
while read -r p; do packages+=("$p"); done < <(bash scripts/edge-arm64-install.sh runtime-packages :arm64)
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
# The SwiftShader step downloads chromium-common:arm64, which needs the arm64 lists.
need_lists=0
if [ ! -f "$cache/swiftshader/vk_swiftshader_icd.json" ] && ! ls "$cache"/chromium-common_*_arm64.deb > /dev/null 2>&1; then need_lists=1; fi
if [ ${#missing[@]} -gt 0 ] || [ "$added" = 1 ] || [ "$need_lists" = 1 ]; then
  $sudo apt-get update
fi
if [ ${#missing[@]} -gt 0 ]; then
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
if installed mesa-vulkan-drivers:arm64; then
  echo "setup-arm64: warning: mesa-vulkan-drivers:arm64 is installed; its ICD files make x86-64 Vulkan programs print driver warnings (apt-get remove mesa-vulkan-drivers:arm64)" >&2
fi

# The edge image's Node version (its node stage's base image), so the test runs the image's binary.
node_version=$(sed -n 's/^FROM .*node:\([0-9][0-9.]*\)-[^ ]* AS node$/\1/p' docker/edge-arm64.Dockerfile)
if [ -z "$node_version" ]; then
  echo "setup-arm64: docker/edge-arm64.Dockerfile has no 'FROM ... node:X.Y.Z-... AS node' stage to take Node's version from" >&2
  exit 1
fi
bash scripts/edge-arm64-install.sh node "$cache/node" "$node_version"
bash scripts/edge-arm64-install.sh swiftshader "$cache/swiftshader"

# Prove the pieces fit: arm64 Node runs under qemu.
arch=$(qemu-aarch64-static -L / "$cache/node/bin/node" -p 'process.arch + " " + process.version')
echo "setup-arm64: ready: qemu-aarch64-static -L / $cache/node/bin/node ($arch), VK_ICD_FILENAMES=$cache/swiftshader/vk_swiftshader_icd.json" >&2
