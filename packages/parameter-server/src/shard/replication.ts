/**
 * Chain replication of a shard (--ps-replicas 1; ARCHITECTURE.md, "Faults"):
 * what a primary hands its backup after each update, and the backup's side
 * of applying it.
 *
 * A record is the update as the optimizer took it (the plain gradients, the
 * momentum-corrected ones, or a skip) with the version it produced, not the
 * resulting values: the backup runs the same optimizer over the same values
 * and slots with the same float32 loops, so applying the same gradients
 * gives bit-identical results, at the cost of one gradient per step on the
 * wire (values plus slots would be 2-3x that for Adam).
 */
import { ClusterError, OPTIMIZER_STATE_TENSOR, type ShardConfig, type WireTensor, partKey } from '@tamp/core/base';
import type { SeenPushes } from './idempotency.js';
import type { ShardPart, ShardStorage } from './storage.js';

/** A (worker, step) push an update took or dropped. */
export interface SeenPush {
  readonly workerId: string;
  readonly step: bigint;
}

export interface ReplicaRecord {
  /** The primary's version after this update. */
  readonly version: bigint;
  /** A sync step skipped as non-finite: nothing changed but the version. */
  readonly skip: boolean;
  readonly grads: ReadonlyMap<string, Float32Array> | undefined;
  readonly corrected: ReadonlyMap<string, Float32Array> | undefined;
  /** Pushes marked seen since the previous record. */
  readonly seen: readonly SeenPush[];
}

/** Where a primary's updates go: its forwarder to the backup (replica-forwarder.ts). */
export interface ReplicaSink {
  /** Called synchronously after each update, in version order. */
  forward(record: ReplicaRecord): void;
  /** Resolves once the backup holds `version` (or replication was turned off). */
  acked(version: bigint): Promise<void>;
}

/** The suffix naming a momentum-corrected gradient in a record's tensors (variable names never hold ':'; slots use it likewise). */
export const CORRECTED_SUFFIX = ':corrected';

/** A record's gradients as tensors for the wire. */
export function recordTensors(record: ReplicaRecord, parts: ReadonlyMap<string, ShardPart>): WireTensor[] {
  const out: WireTensor[] = [];
  const add = (grads: ReadonlyMap<string, Float32Array> | undefined, suffix: string) => {
    if (grads === undefined) return;
    for (const [key, part] of parts) {
      const data = grads.get(key);
      if (data !== undefined) out.push({ name: `${part.name}${suffix}`, shape: part.shape, dtype: 'float32', data, sliceStart: part.sliceStart });
    }
  };
  add(record.grads, '');
  add(record.corrected, CORRECTED_SUFFIX);
  return out;
}

/** A record's tensors back into gradients by part key, checked against the backup's parts. */
export function recordGradients(
  tensors: readonly WireTensor[],
  parts: ReadonlyMap<string, ShardPart>,
): { grads: Map<string, Float32Array> | undefined; corrected: Map<string, Float32Array> | undefined } {
  const plain = new Map<string, Float32Array>();
  const corrected = new Map<string, Float32Array>();
  for (const t of tensors) {
    const isCorrected = t.name.endsWith(CORRECTED_SUFFIX);
    const name = isCorrected ? t.name.slice(0, -CORRECTED_SUFFIX.length) : t.name;
    const key = partKey(name, t.sliceStart);
    const part = parts.get(key);
    if (part === undefined || t.dtype !== 'float32' || t.data.length !== part.sliceLength) {
      throw new ClusterError('CLUSTER_CONFIG', `replica apply: "${t.name}" (slice at ${t.sliceStart}) does not match this backup's parts; the chief copies the primary's state to it first`);
    }
    (isCorrected ? corrected : plain).set(key, t.data as Float32Array);
  }
  const whole = (m: Map<string, Float32Array>) => {
    if (m.size === 0) return undefined;
    if (m.size !== parts.size) throw new ClusterError('CLUSTER_CONFIG', `replica apply: ${m.size} of the backup's ${parts.size} parts in one update`);
    return m;
  };
  return { grads: whole(plain), corrected: whole(corrected) };
}

/** What a new backup is given first: the whole state, as an Assign carries it, and every (worker, step) remembered. */
export interface ReplicaCopy {
  readonly config: ShardConfig;
  readonly version: bigint;
  readonly tensors: WireTensor[];
  readonly seen: SeenPush[];
}

/** Copies of a shard's values, slots and optimizer state at `version` (taken synchronously: nothing applies meanwhile). */
export function replicaCopy(config: ShardConfig, storage: ShardStorage, version: bigint, seen: SeenPushes): ReplicaCopy {
  const tensors: WireTensor[] = [];
  for (const p of storage.parts.values()) {
    tensors.push({ name: p.name, shape: p.shape, dtype: 'float32', data: p.value.slice(), sliceStart: p.sliceStart });
    storage.optimizer.slotNames.forEach((slot, i) => {
      tensors.push({ name: `${p.name}:${slot}`, shape: p.shape, dtype: 'float32', data: (p.slots[i] as Float32Array).slice(), sliceStart: p.sliceStart });
    });
  }
  const global = storage.optimizer.globalState();
  if (Object.keys(global).length > 0) tensors.push({ name: OPTIMIZER_STATE_TENSOR, shape: [2], dtype: 'float32', data: Float32Array.from([global.accBeta1 ?? NaN, global.accBeta2 ?? NaN]), sliceStart: 0 });
  return { config: { ...config, version }, version, tensors, seen: [...seen.entries()] };
}

/** Apply a forwarded update's gradients as the primary did (same optimizer, same loops). */
export function applyRecord(storage: ShardStorage, tensors: readonly WireTensor[]): void {
  const { grads, corrected } = recordGradients(tensors, storage.parts);
  storage.apply(grads, corrected);
}
