/**
 * `tamp ps`: one parameter server, and what every cluster role shares
 * (TF_CONFIG, the chief secret from the environment, the listen address).
 * This module and its imports load no tfjs (@tamp/core/base,
 * @tamp/core/node-base), so a parameter server, restarted after a crash,
 * is back sooner (ARCHITECTURE.md, "Faults").
 */
import { hostname } from 'node:os';
import { ClusterError, UsageError } from '@tamp/core/base';
import { heapGrowingPercent, tuneHeapForCluster } from '@tamp/core/node-base';
import { kernelsFromEnv, setServerKernels, startParameterServer } from '@tamp/parameter-server';
import { type Role, type TfConfig, parseTfConfig, portOf } from '@tamp/worker/cluster-config';
import { chiefSecretFromEnv } from '@tamp/rpc';
import { defineCommand } from '../command.js';
import type { Output } from '../output.js';
import { roleLog } from './role-log.js';
import { type MetricsArgs, type SecurityArgs, dryRunResult, healthPortFrom, securityFrom, serverRoleOptions, startMetrics, stopMetrics } from './role-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

/**
 * The job's chief secret from TAMP_CHIEF_SECRET or TAMP_CHIEF_SECRET_FILE (a
 * launcher's, or a deployment's secret): pinned on a parameter server, used
 * by the chief. Unset: the chief makes one and a parameter server takes the
 * first Assign's (ARCHITECTURE.md, "Security").
 */
export function chiefSecretOption(): { chiefSecret?: string } {
  const secret = chiefSecretFromEnv();
  return secret !== undefined ? { chiefSecret: secret } : {};
}

/** Tell a launching parent (over IPC) which port this role bound. */
export function announce(port: number): void {
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
export function defaultHost(tf: TfConfig | undefined): string {
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
    ...serverRoleOptions,
  },
  run: ({ options, out }) => runPsRole(options, out, tfConfigFor('ps'), options['dry-run']),
});

