/**
 * The complete check of a push before anything changes: a known worker, the
 * whole stream, exactly the shard's parts with their shapes and dtype, and
 * finite values. A push that fails any of these is refused as a whole.
 */
import { ClusterError, InvalidArgumentError, type WireTensor, partKey } from '@tamp/core/base';
import type { ShardPart } from './storage.js';

export interface PushMeta {
  readonly workerId: string;
  readonly step: bigint;
  readonly basedOnVersion: bigint;
  readonly batchSize: number;
  readonly tensorCount: number;
  /** DGC's momentum-corrected accumulation (the worker keeps the momentum): applied with plain SGD. */
  readonly momentumCorrected?: boolean;
  /** The top-k of Adam's accumulated direction (the worker keeps Adam's moments): applied with plain SGD. */
  readonly adamCorrected?: boolean;
}

/** Whether a push is applied with plain SGD at the job's learning rate (the worker kept its optimizer's state: DGC's momentum correction or the Adam correction). */
export function appliedPlain(meta: PushMeta): boolean {
  return meta.momentumCorrected === true || meta.adamCorrected === true;
}

/** Refuse a corrected push (momentum or Adam) that the job's Assign did not agree to: the shard would apply it as a plain gradient. */
export function refuseUnagreedCorrection(meta: PushMeta, config: { readonly momentumCorrection?: boolean; readonly adamCorrection?: boolean }): void {
  const what = `push from ${meta.workerId} step ${meta.step}`;
  if (meta.momentumCorrected === true && config.momentumCorrection !== true) {
    throw new InvalidArgumentError(
      `${what}: a momentum-corrected gradient, but this job did not agree to momentum correction (it needs the momentum optimizer and a top-k or auto push codec); run the same Tamp version in every role`,
    );
  }
  if (meta.adamCorrected === true && config.adamCorrection !== true) {
    throw new InvalidArgumentError(
      `${what}: an Adam-corrected direction, but this job did not agree to the Adam correction (it needs the adam optimizer and a top-k or auto push codec); run the same Tamp version in every role`,
    );
  }
}

const FINITE_BLOCK = 4096;

/**
 * Index of the first NaN or ±Infinity in `data`, or -1. Sums x·0 over blocks
 * of elements (0 for every finite x, NaN for NaN and ±Infinity), a loop
 * without branches that V8 runs at about 5 GB/s here (a compare per element
 * ran at 2-3.5 GB/s); only a block whose sum is not 0 is searched element by
 * element. A push pays this for every megabyte it carries.
 */
export function firstNonFinite(data: Float32Array): number {
  const n = data.length;
  for (let start = 0; start < n; start += FINITE_BLOCK) {
    const end = Math.min(n, start + FINITE_BLOCK);
    let sum = 0;
    for (let i = start; i < end; i++) sum += (data[i] as number) * 0;
    if (sum !== 0) {
      for (let i = start; i < end; i++) if (!Number.isFinite(data[i] as number)) return i;
    }
  }
  return -1;
}

/** Refuse an id the job does not know (`what`: the request, for the message). */
export function checkKnownWorker(workerIds: readonly string[], id: string, what: string): void {
  if (!workerIds.includes(id)) throw new ClusterError('UNKNOWN_WORKER', `${what}: worker "${id}" is not part of this job (known: ${workerIds.join(', ')})`);
}

/** The shard a push is checked against. */
export interface PushTarget {
  readonly index: number;
  readonly workerIds: readonly string[];
  readonly parts: ReadonlyMap<string, ShardPart>;
}

/** Validate a complete push; returns the gradients by part key. */
export function validatePush(target: PushTarget, meta: PushMeta, tensors: readonly WireTensor[]): Map<string, Float32Array> {
  const { index, parts } = target;
  checkKnownWorker(target.workerIds, meta.workerId, 'push');
  if (tensors.length !== meta.tensorCount) {
    throw new InvalidArgumentError(`push from ${meta.workerId} step ${meta.step}: the stream ended after ${tensors.length} of ${meta.tensorCount} tensors`);
  }
  const grads = new Map<string, Float32Array>();
  for (const t of tensors) {
    const key = partKey(t.name, t.sliceStart);
    const part = parts.get(key);
    if (part === undefined) {
      const other = [...parts.values()].find((p) => p.name === t.name);
      throw new ClusterError(
        'UNKNOWN_VARIABLE',
        other === undefined
          ? `push: gradient "${t.name}" names no variable of shard ${index}`
          : `push: gradient "${t.name}" starts at element ${t.sliceStart}, but shard ${index} holds it from element ${other.sliceStart}`,
      );
    }
    if (t.dtype !== 'float32') throw new ClusterError('SHAPE_MISMATCH', `push: gradient "${t.name}" has dtype ${t.dtype}, expected float32`);
    if (t.shape.length !== part.shape.length || t.shape.some((d, i) => d !== part.shape[i])) {
      throw new ClusterError('SHAPE_MISMATCH', `push: gradient "${t.name}" has shape [${t.shape.join(',')}], expected [${part.shape.join(',')}]`);
    }
    if (t.data.length !== part.sliceLength) {
      throw new ClusterError('SHAPE_MISMATCH', `push: gradient "${t.name}" carries ${t.data.length} elements from ${t.sliceStart}, expected ${part.sliceLength}`);
    }
    const data = t.data as Float32Array;
    const bad = firstNonFinite(data);
    if (bad !== -1) {
      throw new ClusterError('NON_FINITE', `push: gradient "${t.name}" holds ${data[bad]} at element ${t.sliceStart + bad}; lower the learning rate or check the loss`);
    }
    grads.set(key, data);
  }
  if (grads.size !== parts.size) {
    const missing = [...parts.keys()].filter((k) => !grads.has(k));
    throw new InvalidArgumentError(`push: missing gradients for ${missing.join(', ')}`);
  }
  return grads;
}
