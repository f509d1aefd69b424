#!/usr/bin/env bash
# Sets up Tamp on Debian 12 with Node 20: system packages, pnpm, dependencies.
#  - chromium: its SwiftShader Vulkan driver runs WebGPU without a GPU, and it
#    is the browser of the end-to-end tests;
#  - libvulkan1: the Vulkan loader Dawn (WebGPU in Node) needs;
#  - dataset-fashion-mnist: the Fashion-MNIST IDX files;
#  - kubernetes-client (only when no kubectl is present): `kubectl kustomize`
#    renders the Kubernetes manifests offline in the container tests;
#  - iproute2: `ip netns` and `tc` build the network lab (test/helpers/netlab.ts).
set -euo pipefail
cd "$(dirname "$0")/.."

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Tamp needs Node.js 20.19 or newer (found $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

sudo=''
if [ "$(id -u)" -ne 0 ]; then sudo='sudo'; fi
packages=(chromium libvulkan1 dataset-fashion-mnist iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ! command -v kubectl > /dev/null; then missing+=(kubernetes-client); fi
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  # corepack in Node 20 cannot verify current pnpm releases; npm can install it.
  $sudo npm install -g "pnpm@$pnpm_version"
fi

pnpm install --frozen-lockfile
