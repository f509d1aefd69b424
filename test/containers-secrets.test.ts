/**
 * docker/: every role that Compose, Swarm, Kubernetes and the Kubeflow TFJob
 * start runs mutual TLS with a bearer token, its files from secrets, each
 * role holding only its own certificate and key; no insecure path is left;
 * probes and health checks ask the plaintext health-only port, never the
 * TLS one. Checked on the files as parsed (Compose interpolated, Kubernetes
 * rendered by `kubectl kustomize`), against the file names `tamp certs`
 * really writes. containers-run.test.ts runs compose.yaml this way.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeClusterCerts } from '@tamp/rpc/certs';
import { type ComposeService, DOCKER_DIR, type Obj, composeDefaults, hasFlag, isIgnored, isObj, list, loadCompose, obj, readDockerignore, shellWords, str } from './helpers/containers.js';
import { COMPLETION_INDEX, argsOf, container, containerEnv, kustomize, podSpec, portNamed, resource } from './helpers/kubernetes.js';
import { REPO } from './helpers/tamp.js';

const ROLES = ['ps', 'chief', 'worker'] as const;
type Role = (typeof ROLES)[number];
/** The security variables and the file each must name: key of the role's Kubernetes secret / Compose secret target. */
const FILES = { TAMP_TLS_CA: 'ca.pem', TAMP_TLS_CERT: 'tls.pem', TAMP_TLS_KEY: 'tls-key.pem', TAMP_TOKEN_FILE: 'token', TAMP_CHIEF_SECRET_FILE: 'chief-secret' } as const;
type Variable = keyof typeof FILES;
/** The variables a role must have: the job's chief secret is for the chief and the parameter servers alone. */
function variablesOf(role: Role): Variable[] {
  return (Object.keys(FILES) as Variable[]).filter((v) => v !== 'TAMP_CHIEF_SECRET_FILE' || role !== 'worker');
}
const HEALTH_PORT = '8081';
const UID = 10001;

/** What `tamp certs --out certs` writes for a role: the basenames of the CA, its certificate and key, and the token. */
let written: { ca: string; token: string; chiefSecret: string; roles: Record<string, { cert: string; key: string }>; all: string[] };
let certDir: string;
beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'tamp-containers-secrets-'));
  const files = await writeClusterCerts(join(certDir, 'certs'));
  const roles = Object.fromEntries(Object.entries(files.roles).map(([r, f]) => [r, { cert: basename(f.cert), key: basename(f.key) }]));
  written = { ca: basename(files.ca), token: basename(files.token), chiefSecret: basename(files.chiefSecret), roles, all: readdirSync(files.dir) };
});
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

function expectedFile(role: Role, variable: Variable): string {
  const own = written.roles[role];
  if (own === undefined) throw new Error(`tamp certs writes no certificate for the role ${role}`);
  return { TAMP_TLS_CA: written.ca, TAMP_TLS_CERT: own.cert, TAMP_TLS_KEY: own.key, TAMP_TOKEN_FILE: written.token, TAMP_CHIEF_SECRET_FILE: written.chiefSecret }[variable];
}

function roleOf(argv: readonly string[], where: string): Role {
  const role = ROLES.find((r) => r === argv[0]);
  if (role === undefined) throw new Error(`${where}: runs "${String(argv[0])}", not a cluster role`);
  return role;
}

/** Everything that says "plaintext is fine": the variable, the flag, either in a value or a comment. */
function insecureMentions(text: string): string[] {
  return text.split('\n').filter((line) => /TAMP_INSECURE|--insecure(?![\w-])/.test(line));
}

// ---------------------------------------------------------------- Compose and Swarm

function serviceEnv(s: ComposeService, where: string): Record<string, string> {
  const env = s.spec.environment;
  if (!isObj(env)) throw new Error(`${where}: environment should be a mapping`);
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, str(v, `${where}.environment.${k}`)]));
}

/** What is wrong with one Compose or Swarm service's security: each problem a sentence. */
function composeProblems(file: string, doc: Obj, s: ComposeService, swarm: boolean): string[] {
  const where = `${file}: services.${s.name}`;
  const role = roleOf(s.command, where);
  const problems: string[] = [];
  const env = serviceEnv(s, where);
  if (env.TAMP_INSECURE !== undefined) problems.push(`${where}: sets TAMP_INSECURE`);
  if (hasFlag(s.command, 'insecure')) problems.push(`${where}: passes --insecure`);
  if (env.TAMP_MTLS !== '1') problems.push(`${where}: TAMP_MTLS is not 1`);
  const top = obj(doc.secrets, `${file}: secrets`);
  // target path in the container → the file under docker/ its secret comes from.
  const mounted = new Map<string, string>();
  for (const entry of s.spec.secrets === undefined ? [] : list(s.spec.secrets, `${where}.secrets`)) {
    if (!isObj(entry)) {
      problems.push(`${where}: secret ${JSON.stringify(entry)} in short syntax: give source and target`);
      continue;
    }
    const source = str(entry.source, `${where}.secrets.source`);
    const target = str(entry.target, `${where}.secrets.target`);
    const file = isObj(top[source]) ? top[source].file : undefined;
    if (typeof file !== 'string' || !/^\.\/certs\/[^/]+$/.test(file)) {
      problems.push(`${where}: secret ${source} is not a file under docker/certs`);
      continue;
    }
    const name = file.slice('./certs/'.length);
    if (!written.all.includes(name)) problems.push(`${where}: secret ${source}: tamp certs writes no ${name}`);
    const allowed = variablesOf(role).map((v) => expectedFile(role, v));
    if (!allowed.includes(name)) problems.push(`${where}: holds ${name}, which is not the ${role}'s`);
    // Swarm sets owner and mode itself; Compose bind-mounts the host file (docker/README.md: keys owned by the image's uid).
    if (swarm && (str(entry.uid, `${where}.secrets.uid`) !== String(UID) || str(entry.gid, `${where}.secrets.gid`) !== String(UID))) problems.push(`${where}: secret ${source} not owned by uid ${UID}`);
    mounted.set(target.startsWith('/') ? target : `/run/secrets/${target}`, name);
  }
  if (role === 'worker' && env.TAMP_CHIEF_SECRET_FILE !== undefined) problems.push(`${where}: a worker is given TAMP_CHIEF_SECRET_FILE`);
  for (const variable of variablesOf(role)) {
    const path = env[variable];
    if (path === undefined) {
      problems.push(`${where}: no ${variable}`);
      continue;
    }
    const name = mounted.get(path);
    if (name !== expectedFile(role, variable)) problems.push(`${where}: ${variable}=${path} is ${name === undefined ? 'none of its secrets' : name}, not ${expectedFile(role, variable)}`);
  }
  return problems;
}

describe('Compose and Swarm: mutual TLS + token from secrets', () => {
  const files = [
    ['compose.yaml', false],
    ['stack.yaml', true],
  ] as const;

  it('every service, GPU profile included, takes the CA, the token and its own role’s certificate and key from docker/certs', () => {
    for (const [file, swarm] of files) {
      const { doc, services } = loadCompose(join(DOCKER_DIR, file), composeDefaults());
      expect(services.map((s) => s.command[0]).sort(), file).toEqual(expect.arrayContaining(['chief', 'ps', 'worker']));
      for (const s of services) expect(composeProblems(file, doc, s, swarm)).toEqual([]);
    }
  });

  it('the check refuses a plaintext service, another role’s key and a variable that names no secret', () => {
    const { doc, services } = loadCompose(join(DOCKER_DIR, 'compose.yaml'), composeDefaults());
    const worker = services.find((s) => s.command[0] === 'worker') as ComposeService;
    const secrets = list(worker.spec.secrets, 'secrets').map((e) => (obj(e, 'secret').target === 'tls-key.pem' ? { source: 'chief-key', target: 'tls-key.pem' } : e));
    const bad: ComposeService = {
      ...worker,
      command: [...worker.command, '--insecure'],
      spec: { ...worker.spec, secrets, environment: { ...serviceEnv(worker, 'worker'), TAMP_INSECURE: '1', TAMP_MTLS: '0', TAMP_TOKEN_FILE: '/run/secrets/nope' } },
    };
    const problems = composeProblems('compose.yaml', doc, bad, false).join('\n');
    for (const pattern of [/sets TAMP_INSECURE/, /passes --insecure/, /TAMP_MTLS is not 1/, /holds chief-key.pem, which is not the worker's/, /TAMP_TLS_KEY=\/run\/secrets\/tls-key.pem is chief-key.pem/, /TAMP_TOKEN_FILE=\/run\/secrets\/nope is none of its secrets/]) {
      expect(problems).toMatch(pattern);
    }
  });

  it('the check refuses a worker holding the chief secret, and a parameter server without it', () => {
    const { doc, services } = loadCompose(join(DOCKER_DIR, 'compose.yaml'), composeDefaults());
    const worker = services.find((s) => s.command[0] === 'worker') as ComposeService;
    const nosy: ComposeService = {
      ...worker,
      spec: {
        ...worker.spec,
        secrets: [...list(worker.spec.secrets, 'secrets'), { source: 'chief-secret', target: 'chief-secret' }],
        environment: { ...serviceEnv(worker, 'worker'), TAMP_CHIEF_SECRET_FILE: '/run/secrets/chief-secret' },
      },
    };
    const problems = composeProblems('compose.yaml', doc, nosy, false).join('\n');
    expect(problems).toMatch(/holds chief-secret, which is not the worker's/);
    expect(problems).toMatch(/a worker is given TAMP_CHIEF_SECRET_FILE/);
    const ps = services.find((s) => s.command[0] === 'ps') as ComposeService;
    const { TAMP_CHIEF_SECRET_FILE: _dropped, ...env } = serviceEnv(ps, 'ps');
    expect(composeProblems('compose.yaml', doc, { ...ps, spec: { ...ps.spec, environment: env } }, false).join('\n')).toMatch(/no TAMP_CHIEF_SECRET_FILE/);
  });
});

// ---------------------------------------------------------------- Kubernetes and Kubeflow

/** What is wrong with one pod's security: its container's variables, the secret volume they point into, the probes. */
function podProblems(where: string, spec: Obj, c: Obj, role: Role): string[] {
  const problems: string[] = [];
  const env = containerEnv(c, { [COMPLETION_INDEX]: '0' });
  if (env.TAMP_INSECURE !== undefined) problems.push(`${where}: sets TAMP_INSECURE`);
  if (hasFlag(argsOf(c, env), 'insecure')) problems.push(`${where}: passes --insecure`);
  if (env.TAMP_MTLS !== '1') problems.push(`${where}: TAMP_MTLS is not 1`);
  const volumes = new Map(list(spec.volumes ?? [], 'volumes').map((v) => [str(obj(v, 'volume').name, 'volume.name'), obj(v, 'volume')]));
  const mounts = list(c.volumeMounts ?? [], 'volumeMounts').map((m) => obj(m, 'volumeMount'));
  if (role === 'worker' && env.TAMP_CHIEF_SECRET_FILE !== undefined) problems.push(`${where}: a worker is given TAMP_CHIEF_SECRET_FILE`);
  for (const variable of variablesOf(role)) {
    const path = env[variable];
    const mount = mounts.find((m) => path !== undefined && path === `${str(m.mountPath, 'mountPath')}/${FILES[variable]}`);
    if (path === undefined || mount === undefined) {
      problems.push(`${where}: ${variable}=${String(path)} is not <a mount>/${FILES[variable]}`);
      continue;
    }
    if (mount.readOnly !== true) problems.push(`${where}: ${str(mount.mountPath, 'mountPath')} is not mounted read-only`);
    const secret = volumes.get(str(mount.name, 'mount.name'))?.secret;
    if (!isObj(secret) || secret.secretName !== `tamp-${role}-tls`) {
      problems.push(`${where}: ${variable} is not in the secret tamp-${role}-tls`);
      continue;
    }
    // Secret files belong to root and the pod's fsGroup: readable by the image's uid through the group, by nobody else.
    const mode = Number(secret.defaultMode ?? 0o644);
    if ((mode & 0o040) === 0 || (mode & 0o007) !== 0) problems.push(`${where}: defaultMode ${mode.toString(8)} should be group-readable and closed to others`);
  }
  const sc = obj(spec.securityContext ?? {}, `${where}: securityContext`);
  if (sc.fsGroup !== UID || sc.runAsUser !== UID) problems.push(`${where}: runs as ${String(sc.runAsUser)} with fsGroup ${String(sc.fsGroup)}, not ${UID} for both`);
  // Probes: the kubelet's grpc probes speak plaintext, so they ask the health-only port.
  for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    const probe = c[kind];
    if (probe === undefined) continue;
    const port = String(obj(obj(probe, kind).grpc, `${kind}.grpc`).port);
    if (port !== env.TAMP_HEALTH_PORT || port !== HEALTH_PORT) problems.push(`${where}: ${kind} asks port ${port}, not the health port TAMP_HEALTH_PORT=${String(env.TAMP_HEALTH_PORT)} (${HEALTH_PORT})`);
  }
  return problems;
}

describe('Kubernetes and Kubeflow: mutual TLS + token from each role’s secret', () => {
  const WORKLOADS = [
    ['StatefulSet', 'tamp-ps', 'ps'],
    ['Job', 'tamp-chief', 'chief'],
    ['Job', 'tamp-worker', 'worker'],
  ] as const;

  it('base and GPU overlay: each role mounts tamp-<role>-tls read-only and points every variable there; probes ask the health port', () => {
    for (const dir of ['base', 'overlays/gpu']) {
      const docs = kustomize(dir);
      for (const [kind, name, role] of WORKLOADS) {
        const spec = podSpec(resource(docs, kind, name));
        const c = container(spec, role);
        expect(podProblems(`k8s/${dir}: ${kind}/${name}`, spec, c, role)).toEqual([]);
        if (role === 'worker') continue;
        // The parameter servers and the chief serve health alone on a port of their own, which the probes use.
        const env = containerEnv(c, {});
        expect(env.TAMP_HEALTH_PORT).toBe(String(portNamed(c, 'health')));
        expect(portNamed(c, 'health')).not.toBe(portNamed(c, 'grpc'));
        expect(obj(obj(c.readinessProbe, 'readinessProbe').grpc, 'grpc').port).toBe(portNamed(c, 'health'));
      }
    }
  });

  it('Kubeflow: every replica of the TFJob mounts its own role’s secret; the chief and the parameter servers are probed on the health port', () => {
    const specs = obj(obj(resource(kustomize('kubeflow'), 'TFJob', 'tamp').spec, 'spec').tfReplicaSpecs, 'tfReplicaSpecs');
    expect(Object.keys(specs).sort()).toEqual(['Chief', 'PS', 'Worker']);
    for (const [type, rs] of Object.entries(specs)) {
      const spec = obj(obj(obj(rs, type).template, 'template').spec, 'spec');
      const c = container(spec, 'tensorflow');
      expect(podProblems(`k8s/kubeflow: ${type}`, spec, c, roleOf([type.toLowerCase()], type))).toEqual([]);
      // The chief and the parameter servers are probed on their health port, a port of its own (TF_CONFIG's is tfjob-port).
      if (type === 'Worker') continue;
      expect(containerEnv(c, {}).TAMP_HEALTH_PORT, type).toBe(String(portNamed(c, 'health')));
      expect(portNamed(c, 'health'), type).not.toBe(portNamed(c, 'tfjob-port'));
      expect(obj(obj(c.readinessProbe, `${type}.readinessProbe`).grpc, 'grpc').port, type).toBe(portNamed(c, 'health'));
    }
  });

  it('the check refuses plaintext, another role’s secret, a writable mount, a world-readable key and a probe on the TLS port', () => {
    const spec = podSpec(resource(kustomize('base'), 'StatefulSet', 'tamp-ps'));
    const c = container(spec, 'ps');
    const bad: Obj = {
      ...c,
      args: [...list(c.args, 'args'), '--insecure'],
      env: [...list(c.env, 'env'), { name: 'TAMP_INSECURE', value: '1' }],
      volumeMounts: list(c.volumeMounts, 'volumeMounts').map((m) => ({ ...obj(m, 'm'), readOnly: false })),
      readinessProbe: { grpc: { port: portNamed(c, 'grpc') } },
    };
    const volumes = list(spec.volumes, 'volumes').map((v) => (obj(v, 'v').secret === undefined ? v : { name: obj(v, 'v').name, secret: { secretName: 'tamp-chief-tls', defaultMode: 0o444 } }));
    const problems = podProblems('case', { ...spec, volumes }, bad, 'ps').join('\n');
    for (const pattern of [/sets TAMP_INSECURE/, /passes --insecure/, /not mounted read-only/, /not in the secret tamp-ps-tls/, /readinessProbe asks port 2222/]) expect(problems).toMatch(pattern);
    const open = podProblems('case', { ...spec, volumes: list(spec.volumes, 'volumes').map((v) => (obj(v, 'v').secret === undefined ? v : { name: obj(v, 'v').name, secret: { secretName: 'tamp-ps-tls', defaultMode: 0o444 } })) }, c, 'ps');
    expect(open.join('\n')).toMatch(/defaultMode 444 should be group-readable and closed to others/);
  });
});

// ---------------------------------------------------------------- no insecure path, and the secrets stay out of git and the images

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

describe('no insecure path', () => {
  it('no Compose, Swarm, Kubernetes or Kubeflow file mentions TAMP_INSECURE or --insecure, even in a comment', () => {
    const files = [join(DOCKER_DIR, 'compose.yaml'), join(DOCKER_DIR, 'stack.yaml'), ...yamlFiles(join(DOCKER_DIR, 'k8s'))];
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const file of files) expect(insecureMentions(readFileSync(file, 'utf8')), relative(REPO, file)).toEqual([]);
    expect(insecureMentions('    TAMP_INSECURE: "1"\n  - --insecure\n  --insecure-skip-tls-verify is kubectl’s')).toHaveLength(2);
  });

  it('docker/README.md creates each role’s secret from the files tamp certs writes', () => {
    const text = readFileSync(join(DOCKER_DIR, 'README.md'), 'utf8').replace(/\\\n\s*/g, ' ');
    for (const role of ROLES) {
      const line = text.split('\n').find((l) => l.includes(`kubectl create secret generic tamp-${role}-tls `));
      expect(line, `a kubectl create secret line for tamp-${role}-tls`).toBeDefined();
      const fromFiles = new Map(
        shellWords(line ?? '')
          .filter((w) => w.startsWith('--from-file='))
          .map((w) => w.slice('--from-file='.length).split('=', 2) as [string, string]),
      );
      for (const variable of variablesOf(role)) expect(fromFiles.get(FILES[variable]), `tamp-${role}-tls ${FILES[variable]}`).toBe(`certs/${expectedFile(role, variable)}`);
      expect(fromFiles.size, `tamp-${role}-tls holds nothing else`).toBe(variablesOf(role).length);
    }
  });

  it('docker/certs is ignored by git and kept out of every image’s build context', () => {
    const rules = readDockerignore();
    for (const name of written.all) {
      expect(isIgnored(rules, `docker/certs/${name}`), name).toBe(true);
      expect(execFileSync('git', ['check-ignore', `docker/certs/${name}`], { cwd: REPO, encoding: 'utf8' }).trim()).toBe(`docker/certs/${name}`);
    }
  });
});
