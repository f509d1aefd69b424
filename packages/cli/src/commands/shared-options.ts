import { BACKEND_NAMES, CONSISTENCY_MODES, type ConsistencyMode, OPTIMIZER_NAMES, UsageError, formatWireCodec, optimizerSettings, parseWireCodec, zooNames } from '@tamp/core';
import { checkModelSpec, describeDatasetChoices } from '@tamp/core/node';
import { type MetricsServer, type RpcSecurity, securityFromFlags, serveMetrics } from '@tamp/rpc';
import type { TrainingSettings } from '@tamp/worker';

export const BACKEND_CHOICES = ['auto', ...BACKEND_NAMES] as const;

export const backendOption = {
  type: 'string',
  choices: BACKEND_CHOICES,
  default: 'auto',
  description: 'tfjs backend: auto takes the fastest really present (tensorflow, webgpu on a hardware adapter, wasm, cpu)',
} as const;

export const requireGpuOption = { type: 'boolean', description: 'fail unless a GPU backend comes up' } as const;

export const jobIdOption = { type: 'string', default: 'tamp', description: 'job id shared by every role of one job' } as const;

/** --dataset's help, from core's registry: "mnist, fashion-mnist, shapes, or an IDX folder (shapes:<seed> ...)". */
export function datasetHelp(): string {
  return `${describeDatasetChoices()} (shapes:<seed> for another set of scenes)`;
}

export const trainOptions = {
  model: { type: 'string', value: 'name|model.json', description: `zoo model (${zooNames().join(', ')}) or a model.json to start from` },
  dataset: { type: 'string', value: 'name|folder', description: datasetHelp() },
  epochs: { type: 'number', integer: true, min: 1, default: 5, description: 'passes over the training split' },
  'epoch-size': { type: 'number', integer: true, min: 1, description: 'samples per epoch (default: the whole training split)' },
  'batch-size': { type: 'number', integer: true, min: 1, default: 64, description: 'samples per step per worker' },
  optimizer: { type: 'string', choices: OPTIMIZER_NAMES, default: 'adam', description: 'optimizer' },
  lr: { type: 'number', min: 0, default: 0.001, description: 'learning rate' },
  mode: { type: 'string', choices: CONSISTENCY_MODES, default: 'async', description: 'cluster consistency: sync, async, or ssp (bounded staleness)' },
  staleness: { type: 'number', integer: true, min: 0, default: 2, description: 'ssp: how many steps a worker may run ahead of the slowest' },
  'backup-workers': { type: 'number', integer: true, min: 0, default: 0, description: 'sync: apply a step when all but this many workers have pushed' },
  seed: { type: 'number', integer: true, default: 1, description: 'seed for initial weights and data order' },
  out: { type: 'string', value: 'dir', description: 'output folder: model/model.json, report.json, checkpoints/' },
  'checkpoint-every': { type: 'number', integer: true, min: 0, description: 'cluster: a checkpoint every N steps of each worker (default: each epoch; 0: only at the end)' },
  resume: { type: 'string', value: 'dir', description: 'cluster: continue from the latest complete checkpoint under DIR (a previous --out)' },
  'ps-replicas': {
    type: 'number',
    integer: true,
    default: 0,
    description: "cluster: 1 keeps a backup of every shard on the next parameter server (chain replication): a push is answered once the backup has it, and a dead server's shards fail over to their backups with no step lost (needs 2+ parameter servers)",
  },
  'peer-timeout': { type: 'number', min: 0.1, default: 60, description: 'cluster: seconds a role waits for a peer that does not answer (the chief for parameter server 0, a worker for the chief) before it exits non-zero naming it' },
  overwrite: { type: 'boolean', description: "cluster: a new job may delete the checkpoints, model and report.json another job left in --out (refused without it)" },
  'heartbeat-timeout': { type: 'number', min: 0.1, default: 10, description: 'cluster: seconds without a heartbeat before a worker is dropped from barriers' },
  'disconnect-grace': {
    type: 'number',
    min: 0,
    default: 1,
    description: "cluster: a worker whose connection to the chief closed (its process died) is dropped after this many seconds unless it reconnects or heartbeats; a stalled worker keeps its connection and is judged by --heartbeat-timeout",
  },
  'wire-push': {
    type: 'string',
    value: 'codec',
    description: 'cluster: gradients on the wire: fp32 (default), fp16, int8 (a scale per 256 values, error feedback) or topk:F (the largest fraction F, Deep Gradient Compression; e.g. topk:0.01) (env TAMP_WIRE_PUSH)',
  },
  'wire-pull': { type: 'string', value: 'codec', description: 'cluster: parameters on the wire: fp32 (default), fp16 or int8 (the change since the last pull; the server keeps each worker\'s rounding error) (env TAMP_WIRE_PULL)' },
  wire: {
    type: 'string',
    choices: ['auto'],
    description: 'cluster: auto: each worker times pulls of the model in fp32, fp16 and int8 over its own link before its first step and uses the fastest both ways (fp32 unless compression saves a fifth), with top-k pushes where int8 would still spend over twice the first step\'s compute on the wire; report.json says what and why (env TAMP_WIRE)',
  },
  'wire-no-feedback': { type: 'boolean', description: 'cluster: drop what int8 and top-k round away instead of sending it later (only to measure what error feedback buys) (env TAMP_WIRE_NO_FEEDBACK=1)' },
  'wire-clip': { type: 'number', min: 0, description: "cluster, topk: scale each worker's gradient to at most this L2 norm before it is accumulated (Deep Gradient Compression's local clipping; default: none) (env TAMP_WIRE_CLIP)" },
  'wire-no-momentum-correction': {
    type: 'boolean',
    description:
      'cluster, topk or auto with --optimizer momentum: keep the momentum on the parameter servers instead of on the workers (Deep Gradient Compression\'s momentum correction, on by default there) (env TAMP_WIRE_NO_MOMENTUM_CORRECTION=1)',
  },
  'wire-warmup': { type: 'number', integer: true, min: 0, description: 'cluster, topk: steps over which top-k density falls from dense to F (default: 5% of each worker\'s steps) (env TAMP_WIRE_WARMUP)' },
} as const;

/** The job's wire codecs from --wire-push/--wire-pull/--wire-warmup, then TAMP_WIRE_* variables. */
export function wireSettings(
  o: {
    wire?: string | undefined;
    'wire-push'?: string | undefined;
    'wire-pull'?: string | undefined;
    'wire-warmup'?: number | undefined;
    'wire-no-feedback'?: boolean | undefined;
    'wire-clip'?: number | undefined;
    'wire-no-momentum-correction'?: boolean | undefined;
  },
  env: NodeJS.ProcessEnv = process.env,
): NonNullable<TrainingSettings['wire']> {
  const text = (v: string | undefined, name: string) => v ?? (env[name] !== undefined && env[name] !== '' ? env[name] : undefined);
  const auto = text(o.wire, 'TAMP_WIRE');
  const noCorrection = o['wire-no-momentum-correction'] === true || /^(1|true|yes|on)$/i.test(env.TAMP_WIRE_NO_MOMENTUM_CORRECTION ?? '');
  const correction = noCorrection ? { momentumCorrection: false } : {};
  if (auto !== undefined) {
    if (auto !== 'auto') throw new UsageError(`TAMP_WIRE=${auto}: the only value is auto (or set TAMP_WIRE_PUSH / TAMP_WIRE_PULL)`);
    if (o['wire-push'] !== undefined || o['wire-pull'] !== undefined) throw new UsageError('--wire auto picks the codecs itself: drop --wire-push/--wire-pull, or drop --wire auto');
    return { push: 'auto', pull: 'auto', ...correction };
  }
  const push = parseWireCodec(text(o['wire-push'], 'TAMP_WIRE_PUSH') ?? 'fp32', 'push');
  const pull = parseWireCodec(text(o['wire-pull'], 'TAMP_WIRE_PULL') ?? 'fp32', 'pull');
  const warmupText = o['wire-warmup'] !== undefined ? String(o['wire-warmup']) : text(undefined, 'TAMP_WIRE_WARMUP');
  const warmup = warmupText === undefined ? undefined : Number(warmupText);
  if (warmup !== undefined && !(Number.isInteger(warmup) && warmup >= 0)) throw new UsageError(`TAMP_WIRE_WARMUP=${warmupText}: give a whole number of steps, 0 or more`);
  const noFeedback = o['wire-no-feedback'] === true || /^(1|true|yes|on)$/i.test(env.TAMP_WIRE_NO_FEEDBACK ?? '');
  const clipText = o['wire-clip'] !== undefined ? String(o['wire-clip']) : text(undefined, 'TAMP_WIRE_CLIP');
  const clip = clipText === undefined ? undefined : Number(clipText);
  if (clip !== undefined && !(clip > 0)) throw new UsageError(`--wire-clip ${clipText}: give a positive L2 norm, e.g. 5`);
  if (clip !== undefined && push.kind !== 'topk') throw new UsageError('--wire-clip is top-k\'s local clipping: add --wire-push topk:F, or drop it');
  return {
    push: formatWireCodec(push),
    pull: formatWireCodec(pull),
    ...(warmup !== undefined ? { warmupSteps: warmup } : {}),
    ...(noFeedback ? { errorFeedback: false } : {}),
    ...(clip !== undefined ? { clipNorm: clip } : {}),
    ...correction,
  };
}

/** The training settings a chief hands to its workers. */
export function trainingSettings(o: {
  model: string | undefined;
  dataset: string | undefined;
  epochs: number;
  'epoch-size': number | undefined;
  'batch-size': number;
  optimizer: string;
  lr: number;
  mode: string;
  staleness: number;
  'backup-workers': number;
  seed: number;
  wire?: string | undefined;
  'wire-push'?: string | undefined;
  'wire-pull'?: string | undefined;
  'wire-warmup'?: number | undefined;
  'wire-no-feedback'?: boolean | undefined;
  'wire-clip'?: number | undefined;
  'wire-no-momentum-correction'?: boolean | undefined;
}): TrainingSettings {
  if (o.model === undefined) throw new UsageError(`needs --model (${zooNames().join(', ')}, or a model.json)`);
  if (o.dataset === undefined) throw new UsageError(`needs --dataset (${describeDatasetChoices()})`);
  checkModelSpec(o.model);
  return {
    model: o.model,
    dataset: o.dataset,
    epochs: o.epochs,
    ...(o['epoch-size'] !== undefined ? { epochSize: o['epoch-size'] } : {}),
    batchSize: o['batch-size'],
    optimizer: optimizerSettings(o.optimizer, o.lr),
    mode: o.mode as ConsistencyMode,
    staleness: o.staleness,
    backupWorkers: o['backup-workers'],
    seed: o.seed,
    wire: wireSettings(o),
  };
}

/** Flags of `tamp train` that the chief of a local cluster receives unchanged. */
export const CHIEF_FLAGS = [
  'model',
  'dataset',
  'epochs',
  'epoch-size',
  'batch-size',
  'optimizer',
  'lr',
  'mode',
  'staleness',
  'backup-workers',
  'seed',
  'out',
  'checkpoint-every',
  'resume',
  'heartbeat-timeout',
  'disconnect-grace',
  'overwrite',
  'peer-timeout',
  'ps-replicas',
  'wire',
  'wire-push',
  'wire-pull',
  'wire-warmup',
  'wire-no-feedback',
  'wire-clip',
  'wire-no-momentum-correction',
] as const;

export const DEVICE_CHOICES = ['auto', 'webgpu', 'wasm', 'cpu'] as const;

export const deviceOption = {
  type: 'string',
  choices: DEVICE_CHOICES,
  default: 'auto',
  description: 'inference device: auto takes webgpu on a hardware adapter, then wasm, then cpu; webgpu named explicitly also runs on a software adapter (SwiftShader)',
} as const;

/** `--dry-run` on the commands that start processes or jobs: check everything they would check first, then stop. */
export const dryRunOption = { type: 'boolean', description: 'check the arguments (and TF_CONFIG) as the command would, then exit without starting anything' } as const;

/** What a dry run prints: what the command would do. */
export function dryRunResult(command: string, would: Record<string, unknown>): { result: Record<string, unknown>; text: string } {
  const details = Object.entries(would)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(', ');
  return { result: { dryRun: true, command, ...would }, text: `tamp ${command}: arguments check out (dry run, nothing started): ${details}` };
}

/**
 * Transport security flags of every cluster role; each also reads an
 * environment variable (for containers, where secrets arrive as files and
 * settings as variables). A flag wins over its variable.
 */
export const securityOptions = {
  'tls-cert': { type: 'string', value: 'file', description: "this role's certificate (PEM), presented by its servers and, with --mtls, by its clients (env TAMP_TLS_CERT)" },
  'tls-key': { type: 'string', value: 'file', description: 'the private key of --tls-cert (env TAMP_TLS_KEY)' },
  'tls-ca': { type: 'string', value: 'file', description: "the CA that signs the cluster's certificates: clients verify servers with it (env TAMP_TLS_CA)" },
  mtls: { type: 'boolean', description: 'mutual TLS: servers demand a client certificate signed by --tls-ca; clients present --tls-cert (env TAMP_MTLS=1)' },
  'token-file': { type: 'string', value: 'file', description: 'a bearer token every call carries and every server checks; needs TLS (env TAMP_TOKEN_FILE)' },
  insecure: { type: 'boolean', description: 'listen beyond loopback without TLS anyway: anyone who can reach the ports can read and change the job (env TAMP_INSECURE=1)' },
} as const;

export interface SecurityArgs {
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  'tls-ca'?: string | undefined;
  mtls?: boolean | undefined;
  'token-file'?: string | undefined;
  insecure?: boolean | undefined;
}

/** The role's transport security from its flags, then TAMP_* variables. */
export function securityFrom(o: SecurityArgs, env: NodeJS.ProcessEnv = process.env): RpcSecurity {
  const text = (v: string | undefined, name: string) => v ?? (env[name] !== undefined && env[name] !== '' ? env[name] : undefined);
  const yes = (v: boolean | undefined, name: string) => v === true || /^(1|true|yes|on)$/i.test(env[name] ?? '');
  const security = securityFromFlags({
    tlsCert: text(o['tls-cert'], 'TAMP_TLS_CERT'),
    tlsKey: text(o['tls-key'], 'TAMP_TLS_KEY'),
    tlsCa: text(o['tls-ca'], 'TAMP_TLS_CA'),
    mtls: yes(o.mtls, 'TAMP_MTLS'),
    tokenFile: text(o['token-file'], 'TAMP_TOKEN_FILE'),
    insecure: yes(o.insecure, 'TAMP_INSECURE'),
  });
  // How often certificate files are re-read (default 5 s): an environment setting only, for operators who rotate often.
  const reload = env.TAMP_TLS_RELOAD_MS;
  if (security.kind !== 'tls' || reload === undefined || reload === '') return security;
  const reloadMs = Number(reload);
  if (!Number.isInteger(reloadMs) || reloadMs < 100) throw new UsageError(`TAMP_TLS_RELOAD_MS=${reload}: give whole milliseconds, at least 100`);
  return { ...security, reloadMs };
}

/** `--metrics-port` of every cluster role: Prometheus metrics and a liveness endpoint over HTTP. */
export const metricsOptions = {
  'metrics-port': { type: 'number', integer: true, min: 0, max: 65535, description: 'serve Prometheus metrics (GET /metrics) and GET /healthz on this port (env TAMP_METRICS_PORT)' },
  'metrics-host': { type: 'string', description: "address the metrics listen on (env TAMP_METRICS_HOST; default: the role's listen address, loopback for a worker without TF_CONFIG)" },
} as const;

/** `--health-port` of the roles that serve gRPC (ps, chief): the health service alone, in plaintext, for probes that cannot speak TLS. */
export const healthOptions = {
  'health-port': {
    type: 'number',
    integer: true,
    min: 0,
    max: 65535,
    description: "also serve the gRPC health service (grpc.health.v1, and nothing else) in plaintext on this port, for Kubernetes' grpc probes and container health checks under TLS (env TAMP_HEALTH_PORT)",
  },
} as const;

/** The health-only port from the flag, then TAMP_HEALTH_PORT; undefined: none. */
export function healthPortFrom(port: number | undefined, env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (port !== undefined) return port;
  const raw = env.TAMP_HEALTH_PORT;
  if (raw === undefined || raw === '') return undefined;
  const p = Number(raw);
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new UsageError(`TAMP_HEALTH_PORT=${raw}: give a port number (0-65535)`);
  return p;
}

/** The metrics flags of a role. */
export interface MetricsArgs {
  'metrics-port'?: number | undefined;
  'metrics-host'?: string | undefined;
}

/**
 * TAMP_TEST_HOLD_METRICS_MS, a test hook: when a role's work is over, its
 * /metrics stays up until one more scrape has been answered, or this many
 * ms have passed, so a test reads every role's final counts (0 or unset: close at once).
 */
export function metricsHoldFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TAMP_TEST_HOLD_METRICS_MS;
  if (raw === undefined || raw === '') return 0;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`TAMP_TEST_HOLD_METRICS_MS must be a number of milliseconds ≥ 0, got "${raw}"; unset it outside tests`);
  return ms;
}

/** Close the role's metrics endpoint, after the test hook's hold (metricsHoldFromEnv). */
export async function stopMetrics(server: MetricsServer | undefined, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (server === undefined) return;
  const hold = metricsHoldFromEnv(env);
  if (hold > 0) await server.nextScrape(hold);
  await server.close();
}

/** Start the role's metrics endpoint when asked (flag, then TAMP_METRICS_PORT), on --metrics-host, TAMP_METRICS_HOST or the role's listen host. */
export async function startMetrics(o: MetricsArgs, listenHost: string, log: (m: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<MetricsServer | undefined> {
  metricsHoldFromEnv(env); // a bad test hook fails before any work
  const port = o['metrics-port'];
  const host = o['metrics-host'] ?? (env.TAMP_METRICS_HOST !== undefined && env.TAMP_METRICS_HOST !== '' ? env.TAMP_METRICS_HOST : listenHost);
  const fromEnv = env.TAMP_METRICS_PORT !== undefined && env.TAMP_METRICS_PORT !== '' ? Number(env.TAMP_METRICS_PORT) : undefined;
  const p = port ?? fromEnv;
  if (p === undefined) return undefined;
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new UsageError(`TAMP_METRICS_PORT=${env.TAMP_METRICS_PORT ?? ''}: give a port number (0-65535)`);
  const server = await serveMetrics(host, p);
  log(`metrics on http://${host.includes(':') ? `[${host}]` : host}:${server.port}/metrics`);
  return server;
}
