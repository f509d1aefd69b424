/**
 * tamp ps | chief | worker: one process of a cluster, described by flags or
 * by Kubeflow's TF_CONFIG alone. Flags win over TF_CONFIG.
 */
import { hostname } from 'node:os';
import { type BackendRequest, ClusterError, UsageError } from '@tamp/core';
import { heapGrowingPercent, tuneHeapForCluster } from '@tamp/core/node';
import { kernelsFromEnv, setServerKernels, startParameterServer } from '@tamp/parameter-server';
import { type Role, type TfConfig, checkPsReplicas, parseAddressList, parseTfConfig, portOf, runChief, runWorker } from '@tamp/worker';
import { chiefSecretFromEnv } from '@tamp/rpc';
import { defineCommand } from '../command.js';
import type { Output } from '../output.js';
import { table } from '../output.js';
import { clusterProgress } from './cluster-progress.js';
import { logLevelOption, roleLog } from './role-log.js';
import { trainSummary } from './summary.js';
import {
  type MetricsArgs,
  type SecurityArgs,
  backendOption,
  dryRunOption,
  dryRunResult,
  jobIdOption,
  metricsOptions,
  requireGpuOption,
  securityFrom,
  startMetrics,
  stopMetrics,
  securityOptions,
  healthOptions,
  healthPortFrom,
  trainOptions,
  trainingSettings,
} from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

/**
 * The job's chief secret from TAMP_CHIEF_SECRET or TAMP_CHIEF_SECRET_FILE (a
 * launcher's, or a deployment's secret): pinned on a parameter server, used
 * by the chief. Unset: the chief makes one and a parameter server takes the
 * first Assign's (ARCHITECTURE.md, "Security").
 */
function chiefSecretOption(): { chiefSecret?: string } {
  const secret = chiefSecretFromEnv();
  return secret !== undefined ? { chiefSecret: secret } : {};
}

/** Tell a launching parent (over IPC) which port this role bound. */
function announce(port: number): void {
  process.send?.({ type: 'listening', port });
}

export function tfConfigFor(role: Role): TfConfig | undefined {
  const tf = parseTfConfig(process.env.TF_CONFIG);
  if (tf !== undefined && tf.task.type !== role) {
    throw new ClusterError('CLUSTER_CONFIG', `TF_CONFIG says this task is ${tf.task.type} ${tf.task.index}; run tamp ${tf.task.type} (or tamp train) instead of tamp ${role}`);
  }
  return tf;
}

/** Bind all interfaces when TF_CONFIG describes a real cluster; loopback otherwise. */
function defaultHost(tf: TfConfig | undefined): string {
  return tf !== undefined ? '0.0.0.0' : '127.0.0.1';
}

/** A StatefulSet pod's ordinal from its host name (tamp-ps-2 → 2), which every Kubernetes version sets. */
export function indexFromHostname(hostname: string): number {
  const m = /-(\d+)$/.exec(hostname);
  if (m === null) throw new UsageError(`--index-from-hostname: the host name "${hostname}" does not end in -<number> (a StatefulSet pod's ordinal); pass --index N instead`);
  return Number(m[1]);
}

export interface PsArgs extends SecurityArgs, MetricsArgs {
  'log-level'?: string | undefined;
  'health-port'?: number | undefined;
  index: number | undefined;
  'index-from-hostname'?: boolean;
  host: string | undefined;
  port: number | undefined;
  'job-id': string;
}

export async function runPsRole(o: PsArgs, out: Output, tf = tfConfigFor('ps'), dryRun = false) {
  if (o['index-from-hostname'] === true && o.index !== undefined) throw new UsageError('give --index or --index-from-hostname, not both');
  // Containers get their host name in HOSTNAME too (Docker, Kubernetes); os.hostname() elsewhere.
  const index = o['index-from-hostname'] === true ? indexFromHostname(process.env.HOSTNAME ?? hostname()) : (o.index ?? tf?.task.index ?? 0);
  const port = o.port ?? (tf !== undefined ? portOf(tf.cluster.ps[index] as string) : 2222);
  const heap = heapGrowingPercent(); // checks TAMP_HEAP_GROWING_PERCENT
  const kernels = kernelsFromEnv(); // checks TAMP_PS_KERNELS
  const security = securityFrom(o);
  const healthPort = healthPortFrom(o['health-port']);
  const chiefSecret = chiefSecretOption(); // checks TAMP_CHIEF_SECRET(_FILE) before anything starts
  if (dryRun) return dryRunResult('ps', { role: 'ps', index, host: o.host ?? defaultHost(tf), port, healthPort, jobId: o['job-id'] });
  tuneHeapForCluster(heap);
  setServerKernels(kernels);
  const log = roleLog(out, { job: o['job-id'], role: 'ps', index }, o['log-level']);
  const metrics = await startMetrics(o, o.host ?? defaultHost(tf), log);
  const ps = await startParameterServer({
    jobId: o['job-id'],
    index,
    host: o.host ?? defaultHost(tf),
    port,
    log,
    rpc: { security, warn: (m) => out.log(m), ...(healthPort !== undefined ? { healthPort } : {}) },
    ...chiefSecret,
    onShutdown: () => stop('the chief ended the job'),
  });
  announce(ps.port);
  let stop: (why: string) => void = () => {};
  const why = await new Promise<string>((resolve) => {
    stop = resolve;
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  await ps.close();
  await stopMetrics(metrics);
  const result = { role: 'ps', index, port: ps.port, version: Number(ps.shard.version), applied: Number(ps.shard.counters.applied), stoppedBy: why };
  return { result, text: `parameter server ${index} stopped (${why}) at version ${result.version}` };
}

export const psCommand = defineCommand({
  name: 'ps',
  summary: COMMAND_SUMMARIES.ps,
  positionals: [],
  options: {
    index: { type: 'number', integer: true, min: 0, description: 'shard index (default: TF_CONFIG task index, or 0)' },
    'index-from-hostname': { type: 'boolean', description: 'shard index = the number ending the host name (a Kubernetes StatefulSet pod: tamp-ps-2 serves shard 2)' },
    host: { type: 'string', description: 'address to listen on (default: 0.0.0.0 with TF_CONFIG, else 127.0.0.1)' },
    port: { type: 'number', integer: true, min: 0, max: 65535, description: 'port (default: from TF_CONFIG, else 2222; 0: any free port)' },
    'job-id': jobIdOption,
    ...securityOptions,
    ...metricsOptions,
    ...healthOptions,
    'log-level': logLevelOption,
    'dry-run': dryRunOption,
  },
  run: ({ options, out }) => runPsRole(options, out, tfConfigFor('ps'), options['dry-run']),
});

export interface ChiefArgs extends SecurityArgs, MetricsArgs {
  'log-level'?: string | undefined;
  'health-port'?: number | undefined;
  ps: string | undefined;
  workers: number | undefined;
  host: string | undefined;
  port: number | undefined;
  'job-id': string;
  backend: string;
}

export async function runChiefRole(
  o: ChiefArgs &
    Parameters<typeof trainingSettings>[0] & {
      out: string | undefined;
      resume: string | undefined;
      'checkpoint-every': number | undefined;
      'heartbeat-timeout': number;
      'disconnect-grace': number;
      overwrite?: boolean;
      'peer-timeout'?: number;
      'ps-replicas'?: number;
    },
  out: Output,
  tf = tfConfigFor('chief'),
  dryRun = false,
) {
  const outDir = o.out ?? o.resume;
  if (outDir === undefined) throw new UsageError('the chief needs --out DIR (where the model, report.json and checkpoints go)');
  const resuming = o.resume !== undefined;
  if (!resuming && (o.model === undefined || o.dataset === undefined)) throw new UsageError('the chief needs --model and --dataset (or --resume DIR)');
  const psAddresses = o.ps !== undefined ? parseAddressList(o.ps, '--ps') : tf?.cluster.ps;
  if (psAddresses === undefined) throw new UsageError('the chief needs --ps host:port,... (or TF_CONFIG)');
  const numWorkers = o.workers ?? tf?.cluster.worker.length;
  if (numWorkers === undefined) throw new UsageError('the chief needs --workers N (or TF_CONFIG)');
  const port = o.port ?? (tf !== undefined ? portOf(tf.cluster.chief[0] as string) : 2223);
  checkPsReplicas(o['ps-replicas'] ?? 0, psAddresses.length);
  const training = o.model !== undefined && o.dataset !== undefined ? trainingSettings(o) : undefined;
  const heap = heapGrowingPercent();
  const security = securityFrom(o);
  const healthPort = healthPortFrom(o['health-port']);
  const chiefSecret = chiefSecretOption(); // checks TAMP_CHIEF_SECRET(_FILE) before anything starts
  if (dryRun) {
    return dryRunResult('chief', { role: 'chief', port, healthPort, ps: psAddresses, workers: numWorkers, out: outDir, resume: o.resume, model: training?.model, dataset: training?.dataset, mode: training?.mode, jobId: o['job-id'] });
  }
  tuneHeapForCluster(heap);
  const log = roleLog(out, { job: o['job-id'], role: 'chief', index: 0 }, o['log-level']);
  const metrics = await startMetrics(o, o.host ?? defaultHost(tf), log);
  const report = await runChief({
    jobId: o['job-id'],
    host: o.host ?? defaultHost(tf),
    port,
    psAddresses,
    numWorkers,
    ...(training !== undefined ? { training } : {}),
    out: outDir,
    ...(o.resume !== undefined ? { resume: o.resume } : {}),
    ...(o.overwrite === true ? { overwrite: true } : {}),
    ...(o['peer-timeout'] !== undefined ? { peerTimeoutMs: o['peer-timeout'] * 1000 } : {}),
    ...(o['checkpoint-every'] !== undefined ? { checkpointEvery: o['checkpoint-every'] } : {}),
    ...(o['ps-replicas'] !== undefined ? { psReplicas: o['ps-replicas'] } : {}),
    heartbeatTimeoutMs: o['heartbeat-timeout'] * 1000,
    disconnectGraceMs: o['disconnect-grace'] * 1000,
    backend: o.backend as BackendRequest,
    security,
    ...(healthPort !== undefined ? { healthPort } : {}),
    ...chiefSecret,
    log,
    onListening: announce,
    onProgress: clusterProgress(out, numWorkers),
  });
  await stopMetrics(metrics);
  out.endProgress();
  return { result: report, text: trainSummary(report) };
}

export const chiefCommand = defineCommand({
  name: 'chief',
  summary: COMMAND_SUMMARIES.chief,
  positionals: [],
  options: {
    ...trainOptions,
    ps: { type: 'string', value: 'host:port,...', description: 'parameter server addresses, in shard order (default: TF_CONFIG)' },
    workers: { type: 'number', integer: true, min: 1, description: 'number of workers (default: TF_CONFIG)' },
    host: { type: 'string', description: 'address to listen on (default: 0.0.0.0 with TF_CONFIG, else 127.0.0.1)' },
    port: { type: 'number', integer: true, min: 0, max: 65535, description: 'port (default: from TF_CONFIG, else 2223)' },
    backend: backendOption,
    'job-id': jobIdOption,
    ...securityOptions,
    ...metricsOptions,
    ...healthOptions,
    'log-level': logLevelOption,
    'dry-run': dryRunOption,
  },
  run: ({ options, out }) => runChiefRole(options, out, tfConfigFor('chief'), options['dry-run']),
});

export interface WorkerArgs extends SecurityArgs, MetricsArgs {
  'log-level'?: string | undefined;
  chief: string | undefined;
  index: number | undefined;
  backend: string;
  'require-gpu': boolean;
  'job-id': string;
  'peer-timeout'?: number;
}

export async function runWorkerRole(o: WorkerArgs, out: Output, tf = tfConfigFor('worker'), dryRun = false) {
  const chiefAddress = o.chief !== undefined ? (parseAddressList(o.chief, '--chief')[0] as string) : tf?.cluster.chief[0];
  if (chiefAddress === undefined) throw new UsageError('the worker needs --chief host:port (or TF_CONFIG)');
  const heap = heapGrowingPercent();
  const security = securityFrom(o);
  if (dryRun) return dryRunResult('worker', { role: 'worker', chief: chiefAddress, index: o.index ?? tf?.task.index, backend: o.backend, requireGpu: o['require-gpu'], jobId: o['job-id'] });
  tuneHeapForCluster(heap);
  const log = roleLog(out, { job: o['job-id'], role: 'worker', index: o.index ?? tf?.task.index }, o['log-level']);
  const metrics = await startMetrics(o, defaultHost(tf), log);
  const report = await runWorker({
    jobId: o['job-id'],
    chiefAddress,
    taskIndex: o.index ?? tf?.task.index ?? -1,
    backend: o.backend as BackendRequest,
    requireGpu: o['require-gpu'],
    security,
    ...(o['peer-timeout'] !== undefined ? { peerTimeoutMs: o['peer-timeout'] * 1000 } : {}),
    log,
  });
  await stopMetrics(metrics);
  return {
    result: report,
    text: table([
      ['worker', report.workerId],
      ['backend', report.backend],
      ['steps', report.steps],
      ['samples/s', report.samples / Math.max(1e-3, report.seconds)],
      ...(report.stopped !== undefined ? [['stopped', report.stopped] as [string, string]] : []),
    ]),
  };
}

export const workerCommand = defineCommand({
  name: 'worker',
  summary: COMMAND_SUMMARIES.worker,
  positionals: [],
  options: {
    chief: { type: 'string', value: 'host:port', description: "the chief's address (default: TF_CONFIG)" },
    index: { type: 'number', integer: true, min: 0, description: 'task index (default: TF_CONFIG, else the chief chooses)' },
    backend: backendOption,
    'require-gpu': requireGpuOption,
    'job-id': jobIdOption,
    ...securityOptions,
    ...metricsOptions,
    'log-level': logLevelOption,
    'peer-timeout': { type: 'number', min: 0.1, default: 60, description: 'exit (non-zero, naming it) once the chief has not answered for this many seconds' },
    'dry-run': dryRunOption,
  },
  run: ({ options, out }) => runWorkerRole(options, out, tfConfigFor('worker'), options['dry-run']),
});

