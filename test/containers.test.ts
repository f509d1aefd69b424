/**
 * docker/: the images, the Compose and Swarm files and the Kubernetes and
 * Kubeflow manifests, checked without a Docker engine or a cluster:
 * - the Dockerfiles through a parser-based lint, and what each image is for;
 * - every YAML file parsed with a real YAML library (Compose files
 *   interpolated as Compose does; Kubernetes ones rendered by `kubectl
 *   kustomize`, offline) and its wiring checked: ports, service names and
 *   the hosts the roles are given, images built here, volumes where the
 *   chief and the parameter servers write;
 * - every container command line through the real CLI's parser and usage checks.
 * containers-run.test.ts runs the Compose topology as processes, and
 * containers-build.test.ts runs the images' build stage.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTfConfig, portOf } from '@tamp/worker';
import {
  type ComposeService,
  DOCKER_DIR,
  type Dockerfile,
  type Obj,
  activeServices,
  composeDefaults,
  envPairs,
  flagValue,
  hasFlag,
  isIgnored,
  isObj,
  list,
  loadCompose,
  obj,
  parseDockerfile,
  readDockerfile,
  readDockerignore,
  shellWords,
  str,
  tampImage,
} from './helpers/containers.js';
import { indexFromHostname } from '../packages/cli/src/commands/roles.js';
import { type CommandLine, checkCommandLine, isPinned, lintDockerfile } from './helpers/containers-lint.js';
import { COMPLETION_INDEX, argsOf, claimOf, container, containerEnv, kustomize, podLabels, podSpec, podTemplate, portNamed, resource, selects, volumeMounts } from './helpers/kubernetes.js';
import { REPO } from './helpers/tamp.js';

const VERSION = (JSON.parse(readFileSync(join(REPO, 'packages/cli/package.json'), 'utf8')) as { version: string }).version;
const PNPM = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { packageManager: string }).packageManager.replace(/^pnpm@/, '');
const IGNORE = readDockerignore();
const DOCKERFILES = new Map<string, Dockerfile>(
  readdirSync(DOCKER_DIR)
    .filter((f) => f.endsWith('.Dockerfile'))
    .map((f) => [f.replace(/\.Dockerfile$/, ''), readDockerfile(f)]),
);
const COMPOSE_FILE = join(DOCKER_DIR, 'compose.yaml');
const STACK_FILE = join(DOCKER_DIR, 'stack.yaml');

function dockerfile(name: string): Dockerfile {
  const df = DOCKERFILES.get(name);
  if (df === undefined) throw new Error(`docker/${name}.Dockerfile does not exist`);
  return df;
}

/** The Dockerfile that builds a Tamp image ("tamp/<name>:<tag>" comes from docker/<name>.Dockerfile). */
function dockerfileOfImage(image: string, where: string): Dockerfile {
  const ref = tampImage(image);
  if (ref === undefined) throw new Error(`${where}: image ${image} is not one of Tamp's (tamp/<name>:<tag>)`);
  expect(ref.tag, `${where}: ${image} should carry the CLI's version`).toBe(VERSION);
  return dockerfile(ref.name);
}

function finalStage(df: Dockerfile) {
  return df.stages.at(-1) as NonNullable<ReturnType<typeof df.stages.at>>;
}

function instruction(df: Dockerfile, keyword: string) {
  return finalStage(df).instructions.filter((i) => i.keyword === keyword).at(-1);
}

function imageEnv(df: Dockerfile): Record<string, string> {
  return Object.fromEntries(finalStage(df).instructions.filter((i) => i.keyword === 'ENV').flatMap((i) => envPairs(i.args)));
}

function uidOf(df: Dockerfile): number {
  return Number(instruction(df, 'USER')?.args.split(':')[0]);
}

/** The argv that follows the image's entrypoint must be tamp's: check the entrypoint ends with the bin. */
function entrypointIsTamp(df: Dockerfile): boolean {
  const entry = instruction(df, 'ENTRYPOINT')?.exec ?? [];
  return entry.at(-1) === '/app/bin/tamp.mjs' && entry.at(-2) === 'node';
}

describe('Dockerfiles', () => {
  it('are the four images of the issue, and every one passes the lint', () => {
    expect([...DOCKERFILES.keys()].sort()).toEqual(['edge-arm64', 'ps', 'worker-cpu', 'worker-gpu']);
    for (const df of DOCKERFILES.values()) expect(lintDockerfile(df, IGNORE), df.file).toEqual([]);
  });

  it('the lint finds what it looks for', () => {
    const bad = parseDockerfile(
      [
        'ARG BASE=node:latest',
        'FROM $BASE AS build',
        'ENV NPM_TOKEN=abc123',
        'ARG GITHUB_TOKEN',
        'COPY no/such/file.txt /app/',
        'COPY node_modules/ /deps/',
        'ADD https://example.com/tool.tar.gz /opt/',
        'RUN apt-get update && apt-get install -y curl',
        'FROM ubuntu',
        'COPY --from=build /app /app',
        'HEALTHCHECK NONE',
        'CMD node /app/bin/tamp.mjs',
      ].join('\n'),
      'bad.Dockerfile',
    );
    const problems = lintDockerfile(bad, IGNORE).join('\n');
    for (const pattern of [
      /FROM node:latest is not pinned/,
      /FROM ubuntu is not pinned/,
      /ENV NPM_TOKEN carries a secret/,
      /ARG GITHUB_TOKEN looks like a secret/,
      /COPY source no\/such\/file.txt does not exist/,
      /COPY source node_modules\/ is excluded by .dockerignore/,
      /ADD from a URL/,
      /without --no-install-recommends/,
      /apt-get lists are left/,
      /the final stage has no USER/,
      /HEALTHCHECK NONE needs a comment/,
      /CMD in shell form/,
    ]) {
      expect(problems).toMatch(pattern);
    }
    expect(isPinned('node:20.20.2-bookworm-slim')).toBe(true);
    expect(isPinned('nvcr.io/nvidia/l4t-base:r36.2.0')).toBe(true);
    expect(isPinned(`node@sha256:${'a'.repeat(64)}`)).toBe(true);
    expect(isPinned('localhost:5000/node')).toBe(false);
    expect(isPinned('node:lts-slim')).toBe(false);
  });

  it('the parser reads directives, comments, continuation lines, stages, flags and exec forms', () => {
    const df = parseDockerfile(
      [
        '# syntax=docker/dockerfile:1',
        '# escape=\\',
        'ARG TAG=1.2.3',
        'FROM --platform=$BUILDPLATFORM img:${TAG} AS build',
        'RUN a \\',
        '  # a comment inside the continuation',
        '  && b',
        '# why',
        'HEALTHCHECK --interval=5s CMD ["node", "h.mjs"]',
        'FROM build',
        'COPY --from=build /x /y',
        'ENV A=1 B="two words"',
      ].join('\n'),
      't.Dockerfile',
    );
    expect(df.directives).toEqual({ syntax: 'docker/dockerfile:1', escape: '\\' });
    expect(df.stages.map((s) => [s.image, s.name, s.platform])).toEqual([
      ['img:1.2.3', 'build', '$BUILDPLATFORM'],
      ['build', undefined, undefined],
    ]);
    const [, run, health] = df.stages[0]?.instructions ?? [];
    expect(run?.args).toBe('a && b');
    expect(health).toMatchObject({ keyword: 'HEALTHCHECK', flags: { interval: '5s' }, exec: ['node', 'h.mjs'], comment: 'why' });
    expect(df.stages[1]?.instructions[1]).toMatchObject({ keyword: 'COPY', flags: { from: 'build' }, args: '/x /y' });
    expect(envPairs(df.stages[1]?.instructions[2]?.args ?? '')).toEqual([
      ['A', '1'],
      ['B', 'two words'],
    ]);
  });

  it('share one build stage: compile, then `pnpm deploy --prod` with the packageManager pnpm', () => {
    const normalized = (df: Dockerfile) => {
      const build = df.stages.find((s) => s.name === 'build');
      if (build === undefined) throw new Error(`${df.file} has no build stage`);
      // Everything but the platform: the same instructions, so BuildKit shares the layers.
      return build.instructions.map((i) => `${i.keyword} ${i.args.replace(/ --platform \S+| --optional/g, '')}`);
    };
    const reference = normalized(dockerfile('ps'));
    expect(reference).toContain(`RUN npm install -g pnpm@${PNPM}`);
    expect(reference).toContain('RUN pnpm install --frozen-lockfile --offline');
    expect(reference.at(-1)).toBe('RUN node docker/build-dist.mjs --out /app');
    for (const df of DOCKERFILES.values()) {
      expect(normalized(df), df.file).toEqual(reference);
      // The runtime takes the deployed /app, never the sources.
      const copies = finalStage(df).instructions.filter((i) => i.keyword === 'COPY');
      expect(copies.some((c) => c.flags.from !== undefined && c.args === '/app /app'), df.file).toBe(true);
      expect(copies.filter((c) => c.flags.from === undefined).every((c) => !c.args.startsWith('.') && !c.args.includes('packages')), df.file).toBe(true);
      expect(entrypointIsTamp(df), `${df.file}: ENTRYPOINT runs /app/bin/tamp.mjs with node`).toBe(true);
      expect(instruction(df, 'ENTRYPOINT')?.exec?.[0], `${df.file}: an init (tini) as PID 1`).toBe('tini');
    }
    const buildFlags = (df: Dockerfile) => df.stages.find((s) => s.name === 'build')?.instructions.at(-1)?.args;
    expect(buildFlags(dockerfile('ps'))).toBe('node docker/build-dist.mjs --out /app --platform linux-x64');
    expect(buildFlags(dockerfile('worker-cpu'))).toBe('node docker/build-dist.mjs --out /app --platform linux-x64 --optional');
    expect(buildFlags(dockerfile('worker-gpu'))).toBe('node docker/build-dist.mjs --out /app --platform linux-x64 --optional');
    expect(buildFlags(dockerfile('edge-arm64'))).toBe('node docker/build-dist.mjs --out /app --platform linux-arm64');
    // One Node everywhere, at least the version package.json's engines asks for.
    const nodeTags = new Set([...DOCKERFILES.values()].flatMap((df) => df.stages.map((s) => s.image).filter((i) => i.startsWith('node:'))));
    expect(nodeTags.size).toBe(1);
    const [major, minor] = ([...nodeTags][0] as string).slice(5).split(/[.-]/).map(Number) as [number, number];
    expect(major * 100 + minor).toBeGreaterThanOrEqual(2019);
  });

  it('each image is what it is for', () => {
    const ps = dockerfile('ps');
    expect(finalStage(ps).image).toMatch(/^node:[\d.]+-bookworm-slim$/);
    const health = instruction(ps, 'HEALTHCHECK');
    expect(health?.exec).toEqual(['node', '/app/healthcheck.mjs']);
    expect(finalStage(ps).instructions.some((i) => i.keyword === 'COPY' && i.args === 'docker/healthcheck.mjs /app/healthcheck.mjs')).toBe(true);
    const psCmd = instruction(ps, 'CMD')?.exec ?? [];
    expect(psCmd[0]).toBe('ps');
    // The health check asks the plaintext health-only port (--health-port, TAMP_HEALTH_PORT), never the gRPC port, which speaks TLS.
    expect(imageEnv(ps).TAMP_HEALTH_PORT).toBe('8081');
    expect(imageEnv(ps).TAMP_HEALTH_PORT).not.toBe(flagValue(psCmd, 'port'));
    expect(instruction(ps, 'EXPOSE')?.args.split(/\s+/)).toContain('8081');
    expect(finalStage(ps).instructions.some((i) => i.keyword === 'RUN' && /mkdir \/runs && chown 10001:10001 \/runs/.test(i.args))).toBe(true);

    const gpu = dockerfile('worker-gpu');
    // libtensorflow 2.9.1 (tfjs-node-gpu 4.x) links CUDA 11.2 and cuDNN 8.1 only.
    for (const stage of gpu.stages.filter((s) => s.image.startsWith('nvidia/'))) expect(stage.image).toMatch(/^nvidia\/cuda:11\.2\.\d+-cudnn8-runtime-ubuntu\d+\.\d+$/);
    expect(finalStage(gpu).image).toMatch(/^nvidia\/cuda:11\.2/);
    expect(readFileSync(join(DOCKER_DIR, 'worker-gpu.Dockerfile'), 'utf8')).toMatch(/CUDA 12[\s\S]{0,80}silently runs on the CPU/);
    const native = gpu.stages.find((s) => s.name === 'native');
    expect(native?.instructions.some((i) => i.keyword === 'RUN' && i.args.includes("'@tensorflow/tfjs-node-gpu/package.json'") && i.args.includes('npm run install'))).toBe(true);
    const gpuCmd = instruction(gpu, 'CMD')?.exec ?? [];
    expect(flagValue(gpuCmd, 'backend')).toBe('tensorflow');
    expect(hasFlag(gpuCmd, 'require-gpu')).toBe(true);

    const cpu = dockerfile('worker-cpu');
    const cpuNative = cpu.stages.find((s) => s.name === 'native');
    expect(cpuNative?.instructions.some((i) => i.keyword === 'RUN' && i.args.includes("'@tensorflow/tfjs-node/package.json'") && i.args.includes('npm run install'))).toBe(true);
    expect((instruction(cpu, 'CMD')?.exec ?? [])[0]).toBe('worker');

    const edge = dockerfile('edge-arm64');
    expect(finalStage(edge).image).toMatch(/^nvcr\.io\/nvidia\/l4t-(base|jetpack):r\d+\.\d+\.\d+$/);
    // Node for arm64 is downloaded (scripts/edge-arm64-install.sh, shared with pnpm test:arm64), so no stage needs emulation.
    expect(edge.stages.find((s) => s.name === 'node')?.platform).toBe('$BUILDPLATFORM');
    expect(edge.stages.find((s) => s.name === 'node')?.instructions.some((i) => i.keyword === 'RUN' && i.args === 'bash /tmp/edge-arm64-install.sh node /opt/node-arm64')).toBe(true);
    expect(edge.stages.find((s) => s.name === 'build')?.platform).toBe('$BUILDPLATFORM');
    expect(finalStage(edge).instructions.some((i) => i.keyword === 'RUN' && /install .*libvulkan1/.test(i.args))).toBe(true);
    expect((instruction(edge, 'CMD')?.exec ?? [])[0]).toBe('infer');

    // The same non-root uid everywhere (the Kubernetes manifests run as it).
    expect(new Set([...DOCKERFILES.values()].map(uidOf))).toEqual(new Set([10001]));
  });

  it('.dockerignore keeps host builds, checkouts and secrets out, and the build inputs in', () => {
    for (const path of ['node_modules/x', 'packages/core/node_modules/y', 'packages/cli/dist/main.js', '.git/HEAD', 'runs/quickstart/report.json', 'docker/.env', 'keys/server.key', 'docker/certs/token', 'docker/certs/ps-key.pem', 'demos/digits/src/main.ts']) {
      expect(isIgnored(IGNORE, path), path).toBe(true);
    }
    const tsconfig = JSON.parse(readFileSync(join(DOCKER_DIR, 'tsconfig.build.json'), 'utf8').replace(/^\s*\/\/.*$/gm, '')) as { extends: string };
    const inputs = ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', '.npmrc', 'docker/build-dist.mjs', 'docker/compile-packages.mjs', 'docker/tsconfig.build.json', join('docker', tsconfig.extends).replace(/^docker\/\.\.\//, '')];
    for (const pkg of readdirSync(join(REPO, 'packages'))) inputs.push(`packages/${pkg}/package.json`, `packages/${pkg}/src`);
    inputs.push('packages/cli/bin/tamp.mjs', 'packages/worker/src/comm/bootstrap.mjs');
    for (const path of inputs) expect(isIgnored(IGNORE, path), path).toBe(false);
  });
});

// ---------------------------------------------------------------- Compose and Swarm

function service(services: readonly ComposeService[], name: string): ComposeService {
  const s = services.find((x) => x.name === name);
  if (s === undefined) throw new Error(`no service ${name} (services: ${services.map((x) => x.name).join(', ')})`);
  return s;
}

/** "host:port" split, with the host a service of this file. */
function addressOf(address: string, services: readonly ComposeService[], where: string): { service: ComposeService; port: number } {
  const host = address.slice(0, address.lastIndexOf(':'));
  const target = services.find((s) => s.name === host);
  if (target === undefined) throw new Error(`${where}: ${address} names no service (services: ${services.map((s) => s.name).join(', ')})`);
  return { service: target, port: portOf(address) };
}

function mounts(s: ComposeService): Array<{ source: string; target: string }> {
  return (s.spec.volumes === undefined ? [] : list(s.spec.volumes, `${s.name}.volumes`)).map((v) => {
    if (isObj(v)) return { source: str(v.source, `${s.name}.volumes`), target: str(v.target, `${s.name}.volumes`) };
    const [source, target] = str(v, `${s.name}.volumes`).split(':') as [string, string];
    return { source, target };
  });
}

/** The cluster wiring both Compose and Swarm files must get right. */
function checkClusterWiring(file: string, doc: Obj, services: readonly ComposeService[]): void {
  const where = (s: ComposeService) => `${file}: services.${s.name}`;
  const roles = (role: string) => services.filter((s) => s.command[0] === role);
  const [chief, ...otherChiefs] = roles('chief');
  if (chief === undefined) throw new Error(`${file}: no chief`);
  expect(otherChiefs).toEqual([]);
  expect(chief.replicas).toBe(1);
  for (const s of services) {
    expect(s.spec.entrypoint, `${where(s)}: the image's entrypoint (tamp) stays`).toBeUndefined();
    const df = dockerfileOfImage(str(s.spec.image, where(s)), where(s));
    expect(entrypointIsTamp(df)).toBe(true);
    expect(flagValue(s.command, 'job-id'), `${where(s)}: one job id`).toBe(flagValue(chief.command, 'job-id'));
  }
  // The chief's --ps list: in shard order, each a ps service on its --port with --index i.
  const ps = (flagValue(chief.command, 'ps') ?? '').split(',');
  expect(ps.length).toBeGreaterThan(0);
  ps.forEach((address, i) => {
    const target = addressOf(address, services, `${where(chief)} --ps`);
    expect(target.service.command[0], `${address} runs tamp ps`).toBe('ps');
    expect(target.service.replicas, `${address} is one server`).toBe(1);
    expect(Number(flagValue(target.service.command, 'port')), `${address}: its --port`).toBe(target.port);
    expect(Number(flagValue(target.service.command, 'index')), `${address}: shard ${i}`).toBe(i);
    expect(flagValue(target.service.command, 'host')).toBe('0.0.0.0');
  });
  expect(roles('ps').length, 'every ps service is in the chief --ps list').toBe(ps.length);
  expect(flagValue(chief.command, 'host')).toBe('0.0.0.0');
  // Workers join the chief's service on its --port; their replicas are the chief's --workers.
  const workers = roles('worker');
  expect(workers.length).toBeGreaterThan(0);
  for (const w of workers) {
    const target = addressOf(flagValue(w.command, 'chief') ?? '', services, `${where(w)} --chief`);
    expect(target.service).toBe(chief);
    expect(target.port).toBe(Number(flagValue(chief.command, 'port')));
    expect(w.replicas, `${where(w)}: replicas = the chief's --workers`).toBe(Number(flagValue(chief.command, 'workers')));
  }
  // The health check asks the role's plaintext health-only port (TAMP_HEALTH_PORT, which the role opens too), not its TLS port.
  for (const s of [chief, ...roles('ps')]) {
    const df = dockerfileOfImage(str(s.spec.image, where(s)), where(s));
    const env = { ...imageEnv(df), ...(isObj(s.spec.environment) ? (s.spec.environment as Record<string, string>) : {}) };
    expect(instruction(df, 'HEALTHCHECK')?.exec, `${where(s)}: a health check`).toBeDefined();
    expect(env.TAMP_HEALTH_PORT, `${where(s)}: TAMP_HEALTH_PORT, the health port`).toBe('8081');
    expect(env.TAMP_HEALTH_PORT, `${where(s)}: TAMP_HEALTH_PORT is not --port`).not.toBe(flagValue(s.command, 'port'));
  }
  // Checkpoints and the model: the chief's --out is on a named volume that every parameter server mounts at the same path.
  const out = flagValue(chief.command, 'out') ?? '';
  const volume = mounts(chief).find((m) => out.startsWith(`${m.target}/`));
  if (volume === undefined) throw new Error(`${where(chief)}: --out ${out} is on no volume`);
  expect(Object.keys(obj(doc.volumes, `${file}: volumes`))).toContain(volume.source);
  for (const s of roles('ps')) expect(mounts(s), `${where(s)} mounts the chief's volume`).toContainEqual(volume);
  // The uid the image runs as owns the mount point, so a fresh volume is writable.
  expect(finalStage(dockerfileOfImage(str(chief.spec.image, file), file)).instructions.some((i) => i.keyword === 'RUN' && i.args.includes(`mkdir ${volume.target} && chown 10001:10001 ${volume.target}`))).toBe(true);
}

describe('Compose and Swarm', () => {
  it('compose.yaml: images built here, services on the hosts and ports the roles are given, the checkpoint volume, restart policies', () => {
    const defaults = composeDefaults();
    expect(defaults.COMPOSE_PROFILES).toBe('cpu');
    const { doc, services } = loadCompose(COMPOSE_FILE, defaults);
    for (const profiles of [['cpu'], ['gpu']]) checkClusterWiring(`compose.yaml (${profiles[0]})`, doc, activeServices(services, profiles));
    for (const s of services) {
      // Every image comes from a Dockerfile here, built with the repository as context.
      const build = obj(s.spec.build, `compose.yaml: services.${s.name}.build`);
      expect(join(DOCKER_DIR, str(build.context, s.name))).toBe(REPO.replace(/\/$/, ''));
      expect(str(build.dockerfile, s.name)).toBe(`docker/${tampImage(str(s.spec.image, s.name))?.name}.Dockerfile`);
      // Run to completion: never restart a container that exited 0.
      expect(['on-failure', 'on-failure:3']).toContain(s.spec.restart);
      for (const dep of Object.keys(isObj(s.spec.depends_on) ? s.spec.depends_on : {})) {
        const target = service(services, dep);
        expect(obj(obj(s.spec.depends_on, s.name)[dep], s.name).condition, `${s.name} waits for ${dep}'s health check`).toBe('service_healthy');
        expect(instruction(dockerfileOfImage(str(target.spec.image, dep), dep), 'HEALTHCHECK')?.exec).toBeDefined();
      }
    }
    // Every role is restarted when it fails: a worker rejoins, a parameter server is restored by the chief, a chief takes the running job over.
    for (const s of services) expect(s.spec.restart, `compose.yaml ${s.name}.restart`).toBe('on-failure:3');
    // The gpu profile swaps the CPU workers for GPU ones, each reserving a GPU, failing loudly without one.
    const cpu = service(services, 'worker');
    const gpu = service(services, 'worker-gpu');
    expect(cpu.profiles).toEqual(['cpu']);
    expect(gpu.profiles).toEqual(['gpu']);
    expect(gpu.spec.image).toBe(`tamp/worker-gpu:${VERSION}`);
    expect(flagValue(gpu.command, 'backend')).toBe('tensorflow');
    expect(hasFlag(gpu.command, 'require-gpu')).toBe(true);
    const devices = list(obj(obj(obj(gpu.spec.deploy, 'deploy').resources, 'resources').reservations, 'reservations').devices, 'devices');
    expect(devices).toEqual([{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
  });

  it('the worker count and the training settings follow the environment', () => {
    const { services } = loadCompose(COMPOSE_FILE, { ...composeDefaults(), TAMP_WORKERS: '5', TAMP_MODEL: 'lenet-5', TAMP_TRAIN_ARGS: "--epoch-size 1024 --lr '0.003'" });
    const chief = service(services, 'chief');
    expect(flagValue(chief.command, 'workers')).toBe('5');
    expect(service(services, 'worker').replicas).toBe(5);
    expect(service(services, 'worker-gpu').replicas).toBe(5);
    expect(flagValue(chief.command, 'model')).toBe('lenet-5');
    expect(chief.command.slice(-4)).toEqual(['--epoch-size', '1024', '--lr', '0.003']);
    // A variable without a default would be an empty string under Compose: the loader refuses it.
    expect(shellWords(`a "b c" 'd e' f\\ g`)).toEqual(['a', 'b c', 'd e', 'f g']);
  });

  it('stack.yaml gives Swarm the same services and commands, in the format `docker stack deploy` reads', () => {
    const defaults = composeDefaults();
    const { doc, services } = loadCompose(STACK_FILE, defaults);
    expect(str(doc.version, 'version')).toMatch(/^3\.\d+$/);
    checkClusterWiring('stack.yaml', doc, services);
    const compose = activeServices(loadCompose(COMPOSE_FILE, defaults).services, ['cpu']);
    expect(services.map((s) => s.name).sort()).toEqual(compose.map((s) => s.name).sort());
    for (const s of services) {
      const twin = service(compose, s.name);
      expect(s.command, `stack.yaml ${s.name} runs what compose.yaml does`).toEqual(twin.command);
      expect(s.spec.image).toBe(twin.spec.image);
      expect(s.replicas).toBe(twin.replicas);
      // Swarm ignores these; they would only mislead.
      for (const key of ['profiles', 'depends_on', 'restart', 'build', 'container_name']) expect(s.spec[key], `stack.yaml ${s.name}.${key}`).toBeUndefined();
      const deploy = obj(s.spec.deploy, `${s.name}.deploy`);
      const restart = obj(deploy.restart_policy, `${s.name}.deploy.restart_policy`).condition;
      expect(restart).toBe('on-failure');
      expect(obj(deploy.restart_policy, `${s.name}.deploy.restart_policy`).max_attempts).toBe(3);
      expect(s.spec.networks).toEqual(['tamp']);
    }
    expect(obj(obj(doc.networks, 'networks').tamp, 'networks.tamp').driver).toBe('overlay');
    // The shared volume is node-local: chief and parameter servers go to the same labelled node.
    const placement = (name: string) => obj(obj(service(services, name).spec.deploy, name).placement, `${name}.placement`).constraints;
    for (const name of ['ps-0', 'ps-1']) expect(placement(name)).toEqual(placement('chief'));
  });
});

// ---------------------------------------------------------------- Kubernetes and Kubeflow

/** The wiring of the kustomize base (and of any overlay over it). */
function checkKubernetesWiring(docs: readonly Obj[]): { chief: string[]; ps: string[][]; workers: string[][] } {
  const psService = resource(docs, 'Service', 'tamp-ps');
  const psSet = resource(docs, 'StatefulSet', 'tamp-ps');
  const chiefService = resource(docs, 'Service', 'tamp-chief');
  const chiefJob = resource(docs, 'Job', 'tamp-chief');
  const workerJob = resource(docs, 'Job', 'tamp-worker');
  const pvc = resource(docs, 'PersistentVolumeClaim', 'tamp-runs');
  const uid = uidOf(dockerfile('ps'));
  const chiefC = container(podSpec(chiefJob), 'chief');
  const chief = argsOf(chiefC);
  expect(chief[0]).toBe('chief');
  const jobId = flagValue(chief, 'job-id');

  // Parameter servers: a headless Service over a StatefulSet; pod i is tamp-ps-i.tamp-ps, shard i.
  const psSpec = obj(psService.spec, 'Service tamp-ps spec');
  expect(psSpec.clusterIP).toBe('None');
  expect(obj(psSet.spec, 'StatefulSet spec').serviceName).toBe(obj(psService.metadata, 'metadata').name);
  expect(selects(obj(psSpec.selector, 'selector'), podLabels(psSet))).toBe(true);
  const psC = container(podSpec(psSet), 'ps');
  const psPort = portNamed(psC, 'grpc');
  const servicePort = obj(list(psSpec.ports, 'ports')[0], 'port');
  expect([servicePort.port, servicePort.targetPort]).toEqual([psPort, 'grpc']);
  const replicas = Number(obj(psSet.spec, 'spec').replicas);
  const psArgs = Array.from({ length: replicas }, () => argsOf(psC, containerEnv(psC, {})));
  const psSetName = String(obj(psSet.metadata, 'metadata').name);
  expect(flagValue(chief, 'ps')?.split(',')).toEqual(psArgs.map((_, i) => `${psSetName}-${i}.tamp-ps:${psPort}`));
  psArgs.forEach((args, i) => {
    expect(args[0]).toBe('ps');
    // Pod i of the StatefulSet is named (and has the host name) tamp-ps-<i>; the CLI reads its shard from that.
    const shard = args.includes('--index-from-hostname') ? indexFromHostname(`${psSetName}-${i}`) : Number(flagValue(args, 'index'));
    expect(shard, `tamp-ps-${i} serves shard ${i}`).toBe(i);
    expect(flagValue(args, 'port')).toBe(String(psPort));
    expect(flagValue(args, 'host')).toBe('0.0.0.0');
    expect(flagValue(args, 'job-id')).toBe(jobId);
  });

  // The chief: a Job behind a Service that selects it alone, on the chief's --port.
  const chiefSvc = obj(chiefService.spec, 'Service tamp-chief spec');
  const chiefSelector = obj(chiefSvc.selector, 'selector');
  expect(selects(chiefSelector, podLabels(chiefJob))).toBe(true);
  expect(selects(chiefSelector, podLabels(psSet)) || selects(chiefSelector, podLabels(workerJob))).toBe(false);
  const chiefPort = portNamed(chiefC, 'grpc');
  expect(flagValue(chief, 'port')).toBe(String(chiefPort));
  expect(flagValue(chief, 'host')).toBe('0.0.0.0');
  const chiefServicePort = obj(list(chiefSvc.ports, 'ports')[0], 'port');
  expect(chiefServicePort.targetPort).toBe('grpc');
  // A crashed chief is restarted and takes the running job over (chief-rejoin.ts); a few times at most.
  expect(obj(podSpec(chiefJob), 'spec').restartPolicy).toBe('OnFailure');
  expect(obj(chiefJob.spec, 'spec').backoffLimit).toBeGreaterThan(0);
  expect(obj(chiefJob.spec, 'spec').backoffLimit).toBeLessThanOrEqual(5);

  // Workers: an Indexed Job of --workers completions; worker i asks for task index i.
  const ws = obj(workerJob.spec, 'Job tamp-worker spec');
  expect(ws.completionMode).toBe('Indexed');
  expect([ws.completions, ws.parallelism]).toEqual([Number(flagValue(chief, 'workers')), Number(flagValue(chief, 'workers'))]);
  const workerC = container(podSpec(workerJob), 'worker');
  const workers = Array.from({ length: Number(ws.completions) }, (_, i) => argsOf(workerC, containerEnv(workerC, { [COMPLETION_INDEX]: String(i) })));
  workers.forEach((args, i) => {
    expect(args[0]).toBe('worker');
    expect(flagValue(args, 'index'), `worker ${i} takes index ${i} from JOB_COMPLETION_INDEX`).toBe(String(i));
    expect(flagValue(args, 'chief')).toBe(`${String(obj(chiefService.metadata, 'metadata').name)}:${String(chiefServicePort.port)}`);
    expect(flagValue(args, 'job-id')).toBe(jobId);
  });
  expect(podSpec(workerJob).restartPolicy).toBe('OnFailure');

  // Checkpoints: the chief's --out on the claim, which every parameter server mounts at the same path.
  const out = flagValue(chief, 'out') ?? '';
  const chiefMount = volumeMounts(chiefC).find((m) => out.startsWith(`${m.mountPath}/`));
  if (chiefMount === undefined) throw new Error(`the chief's --out ${out} is on no volume`);
  const claim = claimOf(podSpec(chiefJob), chiefMount.name);
  expect(claim).toBe(obj(pvc.metadata, 'metadata').name);
  const psMount = volumeMounts(psC).find((m) => m.mountPath === chiefMount.mountPath);
  expect(psMount, 'the parameter servers mount the chief volume at the same path').toBeDefined();
  expect(claimOf(podSpec(psSet), psMount?.name ?? '')).toBe(claim);
  expect(obj(pvc.spec, 'pvc spec').accessModes).toContain('ReadWriteMany');

  // Images built here, run as the images' non-root uid, which owns the volume (fsGroup).
  for (const [workload, spec, cs] of [
    ['ps', podSpec(psSet), [psC]],
    ['chief', podSpec(chiefJob), [chiefC]],
    ['worker', podSpec(workerJob), [workerC]],
  ] as const) {
    const sc = obj(spec.securityContext, `${workload} securityContext`);
    expect(sc).toMatchObject({ runAsNonRoot: true, runAsUser: uid });
    if (workload !== 'worker') expect(sc.fsGroup).toBe(uid);
    for (const c of cs) expect(entrypointIsTamp(dockerfileOfImage(str(c.image, workload), workload))).toBe(true);
  }
  return { chief, ps: psArgs, workers };
}

/** The TF_CONFIG the Kubeflow training operator sets for one replica of a TFJob. */
function operatorTfConfig(tfjob: Obj, namespace: string, task: { type: string; index: number }): string {
  const name = str(obj(tfjob.metadata, 'metadata').name, 'name');
  const cluster: Record<string, string[]> = {};
  for (const [type, replicaSpec] of Object.entries(obj(obj(tfjob.spec, 'spec').tfReplicaSpecs, 'tfReplicaSpecs'))) {
    const rs = obj(replicaSpec, type);
    const port = portNamed(container(obj(obj(rs.template, 'template').spec, 'spec'), 'tensorflow'), 'tfjob-port');
    const rt = type.toLowerCase();
    cluster[rt] = Array.from({ length: Number(rs.replicas) }, (_, i) => `${name}-${rt}-${i}.${namespace}.svc:${port}`);
  }
  return JSON.stringify({ cluster, task, environment: 'cloud' });
}

describe('Kubernetes and Kubeflow', () => {
  it('kubectl kustomize renders the base, the GPU overlay and the Kubeflow TFJob offline', () => {
    const kinds = (dir: string) => kustomize(dir).map((d) => `${String(d.kind)}/${String(obj(d.metadata, 'metadata').name)}`).sort();
    expect(kinds('base')).toEqual(['Job/tamp-chief', 'Job/tamp-worker', 'PersistentVolumeClaim/tamp-runs', 'Service/tamp-chief', 'Service/tamp-ps', 'Service/tamp-worker', 'StatefulSet/tamp-ps']);
    expect(kinds('overlays/gpu')).toEqual(kinds('base'));
    expect(kinds('kubeflow')).toEqual(['PersistentVolumeClaim/tamp-runs', 'TFJob/tamp']);
  });

  it('every pod is scraped: its Prometheus annotations name the metrics port the role serves on all interfaces, and each Service exposes it', () => {
    const scraped = (template: Obj): number => {
      const a = obj(obj(template.metadata, 'template.metadata').annotations, 'annotations');
      expect(a['prometheus.io/scrape']).toBe('true');
      expect(a['prometheus.io/path']).toBe('/metrics');
      return Number(a['prometheus.io/port']);
    };
    const docs = kustomize('base');
    for (const [kind, name, role] of [['StatefulSet', 'tamp-ps', 'ps'], ['Job', 'tamp-chief', 'chief'], ['Job', 'tamp-worker', 'worker']] as const) {
      const workload = resource(docs, kind, name);
      const port = scraped(podTemplate(workload));
      const c = container(podSpec(workload), role);
      expect(portNamed(c, 'metrics'), name).toBe(port);
      const args = argsOf(c, containerEnv(c, { [COMPLETION_INDEX]: '0' }));
      expect(Number(flagValue(args, 'metrics-port')), name).toBe(port);
      // A worker has no --host: its metrics listen where --metrics-host says (loopback otherwise).
      expect(flagValue(args, 'metrics-host') ?? flagValue(args, 'host'), name).toBe('0.0.0.0');
      const services = docs.filter((d) => d.kind === 'Service' && selects(obj(obj(d.spec, 'spec').selector, 'selector'), podLabels(workload)));
      expect(services.length, `${name}: a Service`).toBeGreaterThan(0);
      for (const svc of services) {
        const metrics = list(obj(svc.spec, 'spec').ports, 'ports').map((x) => obj(x, 'port')).find((x) => x.name === 'metrics');
        expect(metrics, `${String(obj(svc.metadata, 'm').name)}: a metrics port`).toMatchObject({ port, targetPort: 'metrics' });
      }
    }
    const specs = obj(obj(resource(kustomize('kubeflow'), 'TFJob', 'tamp').spec, 'spec').tfReplicaSpecs, 'tfReplicaSpecs');
    for (const [replica, spec] of Object.entries(specs)) {
      const template = obj(obj(spec, replica).template, `${replica}.template`);
      const port = scraped(template);
      const c = container(obj(template.spec, 'spec'), 'tensorflow');
      expect(portNamed(c, 'metrics'), replica).toBe(port);
      // TF_CONFIG roles listen on all interfaces; the port comes from the environment (every replica runs the same args).
      expect(Number(containerEnv(c, {}).TAMP_METRICS_PORT), replica).toBe(port);
    }
  });

  it('base: parameter servers, chief and workers find each other; the chief writes to the claim the parameter servers share', () => {
    const { workers } = checkKubernetesWiring(kustomize('base'));
    for (const w of workers) expect(flagValue(w, 'backend')).toBe('auto');
    const worker = container(podSpec(resource(kustomize('base'), 'Job', 'tamp-worker')), 'worker');
    expect(worker.image).toBe(`tamp/worker-cpu:${VERSION}`);
  });

  it('the GPU overlay gives each worker an nvidia.com/gpu and the GPU image, and changes nothing else', () => {
    const base = kustomize('base');
    const docs = kustomize('overlays/gpu');
    const { workers } = checkKubernetesWiring(docs);
    const job = resource(docs, 'Job', 'tamp-worker');
    const worker = container(podSpec(job), 'worker');
    expect(worker.image).toBe(`tamp/worker-gpu:${VERSION}`);
    expect(Number(obj(obj(worker.resources, 'resources').limits, 'limits')['nvidia.com/gpu'])).toBeGreaterThanOrEqual(1);
    for (const w of workers) {
      expect(flagValue(w, 'backend')).toBe('tensorflow');
      expect(hasFlag(w, 'require-gpu')).toBe(true);
    }
    for (const d of docs.filter((x) => !(x.kind === 'Job' && obj(x.metadata, 'm').name === 'tamp-worker'))) {
      expect(d).toEqual(resource(base, str(d.kind, 'kind'), str(obj(d.metadata, 'm').name, 'name')));
    }
  });

  it("Kubeflow: every replica runs the same `tamp train`, and the operator's TF_CONFIG gives each its role, address and port", () => {
    const docs = kustomize('kubeflow');
    const tfjob = resource(docs, 'TFJob', 'tamp');
    expect(tfjob.apiVersion).toBe('kubeflow.org/v1');
    const specs = obj(obj(tfjob.spec, 'spec').tfReplicaSpecs, 'tfReplicaSpecs');
    expect(Object.keys(specs).sort()).toEqual(['Chief', 'PS', 'Worker']);
    expect(obj(specs.Chief, 'Chief').replicas).toBe(1);
    // A crashed chief is restarted and takes the running job over; the run policy's backoffLimit bounds it.
    expect(obj(specs.Chief, 'Chief').restartPolicy).toBe('OnFailure');
    // A crashed parameter server is restarted in its pod and restored by the chief (or failed over to its backup).
    expect(obj(specs.PS, 'PS').restartPolicy).toBe('OnFailure');
    expect(obj(obj(tfjob.spec, 'spec').runPolicy, 'runPolicy').backoffLimit).toBeGreaterThan(0);
    const withoutBackend = (args: readonly string[]) => args.filter((a, k) => a !== '--require-gpu' && a !== '--backend' && args[k - 1] !== '--backend');
    const reference = withoutBackend(argsOf(container(obj(obj(obj(specs.Chief, 'Chief').template, 't').spec, 's'), 'tensorflow')));
    expect(reference[0]).toBe('train');
    for (const flag of ['ps', 'chief', 'workers', 'index', 'port', 'host']) expect(hasFlag(reference, flag), `TF_CONFIG gives --${flag}`).toBe(false);
    const uid = uidOf(dockerfile('ps'));
    const out = flagValue(reference, 'out') ?? '';
    for (const [type, replicaSpec] of Object.entries(specs)) {
      const rs = obj(replicaSpec, type);
      const spec = obj(obj(rs.template, 'template').spec, 'spec');
      const c = container(spec, 'tensorflow');
      const args = argsOf(c);
      expect(withoutBackend(args), `${type} runs the chief's command`).toEqual(reference);
      expect(entrypointIsTamp(dockerfileOfImage(str(c.image, type), type))).toBe(true);
      expect(obj(spec.securityContext, 'securityContext')).toMatchObject({ runAsNonRoot: true, runAsUser: uid });
      for (let index = 0; index < Number(rs.replicas); index++) {
        const tf = parseTfConfig(operatorTfConfig(tfjob, 'default', { type: type.toLowerCase(), index }));
        // The role listens where TF_CONFIG says its Service points: tfjob-port.
        const mine = tf?.cluster[tf.task.type][index] ?? '';
        expect(mine).toBe(`tamp-${type.toLowerCase()}-${index}.default.svc:${portNamed(c, 'tfjob-port')}`);
        expect(portOf(mine)).toBe(portNamed(c, 'tfjob-port'));
      }
      if (type === 'Chief' || type === 'PS') {
        // The chief's --out, where each parameter server writes its checkpoint shards: the same claim at the same path.
        const mount = volumeMounts(c).find((m) => out.startsWith(`${m.mountPath}/`));
        expect(mount, `${type} mounts the volume holding --out ${out}`).toBeDefined();
        expect(claimOf(spec, mount?.name ?? '')).toBe('tamp-runs');
        expect(obj(spec.securityContext, 'securityContext').fsGroup).toBe(uid);
      }
      if (type === 'Worker') {
        expect(c.image).toBe(`tamp/worker-gpu:${VERSION}`);
        expect(flagValue(args, 'backend')).toBe('tensorflow');
        expect(hasFlag(args, 'require-gpu')).toBe(true);
        expect(Number(obj(obj(c.resources, 'resources').limits, 'limits')['nvidia.com/gpu'])).toBeGreaterThanOrEqual(1);
      }
    }
    expect(obj(resource(docs, 'PersistentVolumeClaim', 'tamp-runs').spec, 'spec').accessModes).toContain('ReadWriteMany');
  });
});

// ---------------------------------------------------------------- command lines

/** `docker run ... tamp/<image>:<tag> <args>` examples in docs and comments, continuation lines joined. */
function documentedRuns(file: string): CommandLine[] {
  const text = readFileSync(join(DOCKER_DIR, file), 'utf8').replace(/\\\n\s*#?\s*/g, ' ');
  const lines: CommandLine[] = [];
  for (const raw of text.split('\n')) {
    if (!/^\s*(#\s*)?docker run\s/.test(raw)) continue;
    const words = shellWords(raw.replace(/^\s*#\s*/, '').replace(/`/g, ' ').replace(/\s(\||&&|;|>).*$/, ''));
    const at = words.findIndex((w) => tampImage(w) !== undefined);
    if (at === -1 || at === words.length - 1) continue;
    dockerfileOfImage(words[at] as string, file);
    lines.push({ where: `docker/${file}: ${raw.trim()}`, argv: words.slice(at + 1) });
  }
  return lines;
}

function allCommandLines(): CommandLine[] {
  const lines: CommandLine[] = [];
  for (const [name, df] of DOCKERFILES) lines.push({ where: `${df.file} CMD`, argv: instruction(dockerfile(name), 'CMD')?.exec ?? [] });
  const defaults = composeDefaults();
  for (const file of [COMPOSE_FILE, STACK_FILE]) {
    for (const s of loadCompose(file, defaults).services) lines.push({ where: `${file}: services.${s.name}`, argv: s.command });
  }
  for (const dir of ['base', 'overlays/gpu']) {
    const docs = kustomize(dir);
    for (const [kind, name, c] of [
      ['StatefulSet', 'tamp-ps', 'ps'],
      ['Job', 'tamp-chief', 'chief'],
      ['Job', 'tamp-worker', 'worker'],
    ] as const) {
      const spec = container(podSpec(resource(docs, kind, name)), c);
      // Pod 1 of each: a StatefulSet pod's host name is <set>-<ordinal>.
      lines.push({ where: `k8s/${dir}: ${kind}/${name}`, argv: argsOf(spec, containerEnv(spec, { [COMPLETION_INDEX]: '1' })), hostname: `${name}-1` });
    }
  }
  const tfjob = resource(kustomize('kubeflow'), 'TFJob', 'tamp');
  for (const [type, rs] of Object.entries(obj(obj(tfjob.spec, 'spec').tfReplicaSpecs, 'tfReplicaSpecs'))) {
    const c = container(obj(obj(obj(rs, type).template, 'template').spec, 'spec'), 'tensorflow');
    lines.push({ where: `k8s/kubeflow: TFJob ${type}`, argv: argsOf(c), tfConfig: operatorTfConfig(tfjob, 'default', { type: type.toLowerCase(), index: 0 }) });
  }
  for (const file of ['README.md', ...[...DOCKERFILES.keys()].map((n) => `${n}.Dockerfile`)]) lines.push(...documentedRuns(file));
  return lines;
}

describe('container command lines', () => {
  it('every one is accepted by the tamp CLI (its own parser, then its --dry-run checks)', async () => {
    const lines = allCommandLines();
    // 4 image CMDs, 5 compose + 4 stack services, 6 Kubernetes containers, 3 TFJob replicas, and the documented runs.
    expect(lines.length).toBeGreaterThanOrEqual(22);
    expect(lines.filter((l) => l.where.includes('README.md')).map((l) => l.argv[0])).toEqual(expect.arrayContaining(['infer', 'bench']));
    const problems: string[] = [];
    for (const line of lines) problems.push(...(await checkCommandLine(line)));
    expect(problems).toEqual([]);
  });

  it('the check refuses what tamp would refuse', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['chief', '--ps', 'ps-0:2222', '--workers', '2', '--model', 'mlp-tiny', '--dataset', 'mnist'], /needs --out/],
      [['chief', '--ps', 'ps-0', '--workers', '2', '--model', 'mlp-tiny', '--dataset', 'mnist', '--out', '/runs/x'], /"ps-0" is not "host:port"/],
      [['chief', '--workers', '2', '--model', 'mlp-tiny', '--dataset', 'mnist', '--out', '/runs/x'], /needs --ps/],
      [['worker', '--backend', 'tensorflow'], /needs --chief/],
      [['worker', '--chief', 'chief:2223', '--backend', 'cuda'], /--backend must be one of/],
      [['worker', '--chief', 'chief:2223', '--index', '$(JOB_COMPLETION_INDEX)'], /--index needs a number/],
      [['ps', '--port', '2222', '--shard', '0'], /unknown option --shard/],
      [['train', '--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '0', '--out', '/x'], /--epochs must be at least 1/],
      [['infer', '/models/model.tamp'], /exactly one of --image FILE or --dataset D/],
      [['bench', 'train', '/models/model.tamp'], /unknown benchmark "train"/],
      [['predict', '--port', '8080'], /not a command/],
      [['serve', '--port', '8080'], /unknown option --port for tamp serve/],
      [['certs', '--out', '/certs', '--hosts', ' , '], /--hosts: give at least one host name or address/],
      [['certs', '--hosts', 'ps-0'], /needs --out DIR/],
    ];
    for (const [argv, pattern] of cases) expect((await checkCommandLine({ where: 'case', argv })).join('\n'), argv.join(' ')).toMatch(pattern);
    // A StatefulSet pod's host name gives the shard; any other host name is refused.
    expect(await checkCommandLine({ where: 'case', argv: ['ps', '--index-from-hostname'], hostname: 'tamp-ps-3' })).toEqual([]);
    expect((await checkCommandLine({ where: 'case', argv: ['ps', '--index-from-hostname'], hostname: 'tamp-ps' })).join('\n')).toMatch(/does not end in -<number>/);
    expect((await checkCommandLine({ where: 'case', argv: ['compress', 'm.json'] })).join('\n')).toMatch(/has no --dry-run/);
  });
});
