# syntax=docker/dockerfile:1
# tamp/worker-cpu: a training worker on @tensorflow/tfjs-node (libtensorflow
# on the CPU, the `tensorflow` backend). Build from the repository root:
#   docker build -f docker/worker-cpu.Dockerfile -t tamp/worker-cpu:0.1.0 .

# ---- build: compile the sources, deploy tamp with production dependencies
# (optional ones included: tfjs-node is an optional dependency of @tamp/cli,
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

# ---- native: tfjs-node's install script, which pnpm-workspace.yaml does not
# let run in a checkout: it downloads libtensorflow 2.9.1 (CPU) and the
# prebuilt addon, or compiles the addon (hence python3, make, g++), on the
# runtime base so the addon matches the libraries it runs with.
FROM node:20.20.2-bookworm-slim AS native
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /app /app
RUN dir="$(node -p "require('path').dirname(require('module').createRequire(require('fs').realpathSync('/app/node_modules/@tamp/core/package.json')).resolve('@tensorflow/tfjs-node/package.json'))")" \
 && cd "$dir" \
 && npm run install \
 && test -n "$(find lib -name tfjs_binding.node)" \
 && node -e "require(process.cwd())"

# ---- runtime
FROM node:20.20.2-bookworm-slim
# tini as PID 1 forwards SIGTERM to node and reaps children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
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
# (Kubernetes and Kubeflow replace the command). auto resolves to tensorflow
# (tfjs-node) here; if libtensorflow cannot come up (a CPU without AVX, say)
# it falls back to WASM and logs why.
CMD ["worker", "--chief", "chief:2223", "--backend", "auto"]
