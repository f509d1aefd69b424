# syntax=docker/dockerfile:1
# tamp/ps: a parameter server (`tamp ps`) or the chief (`tamp chief`), the
# roles that hold no training backend of their own (the chief evaluates on
# WASM). Build from the repository root:
#   docker build -f docker/ps.Dockerfile -t tamp/ps:0.1.0 .

# ---- build: compile the sources, deploy tamp with production dependencies only
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
RUN node docker/build-dist.mjs --out /app --platform linux-x64

# ---- runtime
FROM node:20.20.2-bookworm-slim
# tini as PID 1 forwards SIGTERM to node and reaps children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 tamp \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin tamp \
 && mkdir /runs && chown 10001:10001 /runs
COPY --from=build /app /app
COPY docker/healthcheck.mjs /app/healthcheck.mjs
ENV NODE_ENV=production \
    TAMP_HEALTH_PORT=8081
WORKDIR /app
# /runs: the mount point for checkpoints and the final model. The chief
# writes them under --out, and every parameter server writes its shard of each
# checkpoint into the same folder, so chief and parameter servers mount one
# shared volume there (owned by the tamp user, so a fresh volume is writable).
USER 10001:10001
EXPOSE 2222 2223 8081
# Healthy while the role answers SERVING to a gRPC health Check on
# TAMP_HEALTH_PORT (8081): the plaintext health-only port that ps and chief
# open from the same variable beside their TLS port (--health-port).
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 CMD ["node", "/app/healthcheck.mjs"]
ENTRYPOINT ["tini", "--", "node", "/app/bin/tamp.mjs"]
CMD ["ps", "--host", "0.0.0.0", "--port", "2222"]
