# syntax=docker/dockerfile:1
# tamp/worker-gpu: a training worker on @tensorflow/tfjs-node-gpu (libtensorflow
# on CUDA, the `tensorflow` backend). Build from the repository root:
#   docker build -f docker/worker-gpu.Dockerfile -t tamp/worker-gpu:0.1.0 .
#
# Why CUDA 11.2 + cuDNN 8.1: tfjs-node-gpu 4.x links libtensorflow 2.9.1,
# built against exactly that pair. On a CUDA 12 (or cuDNN 9) image
# libtensorflow cannot open its CUDA libraries and silently runs on the CPU;
# the worker therefore runs with --backend tensorflow --require-gpu, which
# turns a missing GPU into a loud failure instead of a slow job.

# Node itself, copied into the CUDA base below.
FROM node:20.20.2-bookworm-slim AS node

# ---- build: compile the sources, deploy tamp with production dependencies
# (optional ones included: tfjs-node-gpu is an optional dependency of @tamp/cli,
# which @tamp/core finds as its optional peer)
FROM node:20.20.2-bookworm-slim AS build
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
RUN node docker/build-dist.mjs --out /app --platform linux-x64 --optional

# ---- native: tfjs-node-gpu's install script, which pnpm-workspace.yaml does
# not let run in a checkout: it downloads libtensorflow 2.9.1 for GPUs and the
# prebuilt addon, or compiles the addon (hence python3, make, g++), on the
# runtime base so the addon matches the libraries it runs with.
FROM nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04 AS native
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /app /app
# Loading the addon here proves it links against libtensorflow and the CUDA
# runtime libraries; the GPU itself is only there at run time.
RUN dir="$(node -p "require('path').dirname(require('module').createRequire(require('fs').realpathSync('/app/node_modules/@tamp/core/package.json')).resolve('@tensorflow/tfjs-node-gpu/package.json'))")" \
 && cd "$dir" \
 && npm run install \
 && test -n "$(find lib -name tfjs_binding.node)" \
 && node -e "require(process.cwd())"

# ---- runtime
FROM nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04
COPY --from=node /usr/local/bin/node /usr/local/bin/node
# tini as PID 1 forwards SIGTERM to node and reaps children.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 tamp \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin tamp
COPY --from=native /app /app
ENV NODE_ENV=production
WORKDIR /app
USER 10001:10001
# No HEALTHCHECK: a worker serves nothing (it is a client of the chief and the
# parameter servers), and its liveness is the chief's business: a worker
# silent for --heartbeat-timeout is dropped from the barriers, and one that
# exits non-zero is restarted by the orchestrator and rejoins.
HEALTHCHECK NONE
ENTRYPOINT ["tini", "--", "node", "/app/bin/tamp.mjs"]
# By default a worker joins the chief of docker/compose.yaml or stack.yaml
# (Kubernetes and Kubeflow replace the command).
CMD ["worker", "--chief", "chief:2223", "--backend", "tensorflow", "--require-gpu"]
