/**
 * Who am I in the cluster? From flags, or from Kubeflow's TF_CONFIG alone:
 *   {"cluster": {"chief": ["host:port"], "ps": [...], "worker": [...]},
 *    "task": {"type": "worker", "index": 0}}
 * ("master" is accepted for "chief", as older TFJobs name it.)
 */
import { ClusterError } from '@tamp/core/base';

export const ROLES = Object.freeze(['chief', 'ps', 'worker'] as const);
export type Role = (typeof ROLES)[number];

export interface TfConfig {
  readonly cluster: { readonly chief: string[]; readonly ps: string[]; readonly worker: string[] };
  readonly task: { readonly type: Role; readonly index: number };
}

function isAddress(value: unknown): value is string {
  return typeof value === 'string' && /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/.test(value);
}

function addresses(value: unknown, role: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ClusterError('CLUSTER_CONFIG', `TF_CONFIG: cluster.${role} must be a list of "host:port" addresses`);
  for (const a of value) if (!isAddress(a)) throw new ClusterError('CLUSTER_CONFIG', `TF_CONFIG: cluster.${role} has "${String(a)}", expected "host:port"`);
  return value as string[];
}

/** Parse and check TF_CONFIG; undefined when it is not set. */
export function parseTfConfig(raw: string | undefined): TfConfig | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw new ClusterError('CLUSTER_CONFIG', `TF_CONFIG is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const v = value as { cluster?: Record<string, unknown>; task?: { type?: unknown; index?: unknown } };
  if (typeof v !== 'object' || v === null || typeof v.cluster !== 'object' || v.cluster === null || typeof v.task !== 'object' || v.task === null) {
    throw new ClusterError('CLUSTER_CONFIG', 'TF_CONFIG needs "cluster" and "task" objects');
  }
  const chief = addresses(v.cluster.chief ?? v.cluster.master, 'chief');
  const ps = addresses(v.cluster.ps, 'ps');
  const worker = addresses(v.cluster.worker, 'worker');
  const rawType = v.task.type === 'master' ? 'chief' : v.task.type;
  if (!(ROLES as readonly unknown[]).includes(rawType)) {
    throw new ClusterError('CLUSTER_CONFIG', `TF_CONFIG: task.type "${String(v.task.type)}" is not one of ${ROLES.join(', ')} (or master)`);
  }
  const type = rawType as Role;
  const index = v.task.index ?? 0;
  if (!Number.isInteger(index) || (index as number) < 0) throw new ClusterError('CLUSTER_CONFIG', `TF_CONFIG: task.index must be a non-negative integer, got ${JSON.stringify(index)}`);
  if (chief.length !== 1) throw new ClusterError('CLUSTER_CONFIG', `TF_CONFIG: cluster.chief needs exactly one address, got ${chief.length}`);
  if (ps.length === 0) throw new ClusterError('CLUSTER_CONFIG', 'TF_CONFIG: cluster.ps needs at least one address');
  if (worker.length === 0) throw new ClusterError('CLUSTER_CONFIG', 'TF_CONFIG: cluster.worker needs at least one address');
  const count = { chief: chief.length, ps: ps.length, worker: worker.length }[type];
  if ((index as number) >= count) throw new ClusterError('CLUSTER_CONFIG', `TF_CONFIG: task ${type} ${JSON.stringify(index)} does not exist (cluster.${type} has ${count})`);
  return { cluster: { chief, ps, worker }, task: { type, index: index as number } };
}

/** The port part of "host:port". */
export function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** Split "a:1,b:2" (flags) into addresses, checking each. */
export function parseAddressList(value: string, what: string): string[] {
  const list = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw new ClusterError('CLUSTER_CONFIG', `${what}: no addresses given`);
  for (const a of list) if (!isAddress(a)) throw new ClusterError('CLUSTER_CONFIG', `${what}: "${String(a)}" is not "host:port"`);
  return list;
}
