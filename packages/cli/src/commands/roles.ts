/**
 * tamp chief | worker: one process of a cluster, described by flags or by
 * Kubeflow's TF_CONFIG alone. Flags win over TF_CONFIG. (`tamp ps` and what
 * the roles share are in ps.ts, which loads no tfjs.)
 */
import { type BackendRequest, UsageError } from '@tamp/core';
import { heapGrowingPercent, tuneHeapForCluster } from '@tamp/core/node-base';
import { checkPsReplicas, parseAddressList, portOf, runChief, runWorker } from '@tamp/worker';
import { defineCommand } from '../command.js';
import type { Output } from '../output.js';
import { table } from '../output.js';
import { clusterProgress } from './cluster-progress.js';
import { logLevelOption, roleLog } from './role-log.js';
import { trainSummary } from './summary.js';
import { announce, chiefSecretOption, defaultHost, tfConfigFor } from './ps.js';
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
  healthPortFrom,
  serverRoleOptions,
  trainOptions,
  trainingSettings,
} from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

export { type PsArgs, indexFromHostname, psCommand, runPsRole, tfConfigFor } from './ps.js';

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
    ...serverRoleOptions,
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

