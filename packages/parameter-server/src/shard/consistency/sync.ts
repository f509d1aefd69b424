/**
 * sync: a step is one gradient from each live worker (less backups). Pushes
 * for the current step are held; when enough have arrived their
 * batch-weighted mean, summed in worker-id order, is applied once and every
 * held push is answered with the new version. A push for a step already
 * applied is dropped (a backup worker's late gradient); one for a later step
 * is refused (the worker must pull with min_version first). A step whose
 * mean update would leave a variable or slot non-finite is skipped: the
 * version advances, nothing else changes, and the shard counts it.
 */
import { InvalidArgumentError, TampError } from '@tamp/core/base';
import type { ConsistencyPolicy, PolicyHost, PushOutcome } from './policy.js';
import { seenBefore } from './policy.js';
import { type PushMeta, appliedPlain } from '../validation.js';

interface PendingGradient {
  readonly workerId: string;
  readonly batchSize: number;
  readonly corrected: boolean;
  readonly grads: ReadonlyMap<string, Float32Array>;
  readonly resolvers: Array<(o: PushOutcome) => void>;
  readonly rejecters: Array<(error: Error) => void>;
}

/**
 * out[i] = Σₖ weights[k]·grads[k][i], summed in double precision in k order
 * and rounded to float32 once. Two contributions (the common case) get their
 * own loop; no double-precision scratch array is allocated.
 */
export function weightedSum(out: Float32Array, grads: readonly Float32Array[], weights: readonly number[]): void {
  const n = out.length;
  if (grads.length === 2) {
    const [a, b] = grads as [Float32Array, Float32Array];
    const [wa, wb] = weights as [number, number];
    for (let i = 0; i < n; i++) out[i] = wa * (a[i] as number) + wb * (b[i] as number);
    return;
  }
  const k = grads.length;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < k; j++) sum += (weights[j] as number) * ((grads[j] as Float32Array)[i] as number);
    out[i] = sum;
  }
}

export class SyncPolicy implements ConsistencyPolicy {
  readonly gatesPulls = false;
  private readonly host: PolicyHost;
  /** Gradients received for the current step, by worker. */
  private pending = new Map<string, PendingGradient>();

  constructor(host: PolicyHost) {
    this.host = host;
  }

  /** Gradients a step needs: one per live worker, less the backups. */
  get required(): number {
    const { workerIds, syncReplicas } = this.host.config;
    return Math.max(1, this.host.live().size - (workerIds.length - syncReplicas));
  }

  accept(meta: PushMeta, grads: ReadonlyMap<string, Float32Array>): Promise<PushOutcome> {
    const version = this.host.version();
    if (meta.step < version) {
      this.host.markSeen(meta.workerId, meta.step);
      this.host.counters.dropped();
      return Promise.resolve({ version, duplicate: false, dropped: true });
    }
    if (meta.step > version) {
      this.host.counters.refused();
      return Promise.reject(
        new InvalidArgumentError(`push from ${meta.workerId}: step ${meta.step} is ahead of shard ${this.host.index}, which collects step ${version}; pull with min_version first`),
      );
    }
    this.host.markSeen(meta.workerId, meta.step);
    return new Promise((resolve, reject) => {
      this.pending.set(meta.workerId, { workerId: meta.workerId, batchSize: Math.max(1, meta.batchSize), corrected: appliedPlain(meta), grads, resolvers: [resolve], rejecters: [reject] });
      this.complete();
    });
  }

  duplicate(meta: PushMeta): Promise<PushOutcome> {
    const waiting = this.pending.get(meta.workerId);
    if (waiting !== undefined && meta.step === this.host.version()) {
      // A retry of a push still waiting at the barrier: answer it when the step completes.
      return new Promise((resolve, reject) => {
        waiting.resolvers.push((o) => resolve({ ...o, duplicate: true }));
        waiting.rejecters.push(reject);
      });
    }
    return seenBefore(this.host);
  }

  beforePull(): Promise<void> {
    return Promise.resolve();
  }

  membershipChanged(): void {
    this.complete();
  }

  replicated(): void {}

  release(error: Error): void {
    for (const p of this.pending.values()) for (const r of p.rejecters) r(error);
    this.pending = new Map();
  }

  private complete(): void {
    if (this.pending.size === 0 || this.pending.size < this.required) return;
    // Batch-weighted mean, summed in worker-id order: the result does not
    // depend on arrival order or on how variables are split over shards.
    const contributions = [...this.pending.values()].sort((a, b) => (a.workerId < b.workerId ? -1 : a.workerId > b.workerId ? 1 : 0));
    const total = contributions.reduce((n, c) => n + c.batchSize, 0);
    // Momentum- and Adam-corrected pushes (the workers keep the optimizer's state) are summed apart and applied with
    // plain SGD; each share keeps its weight of the whole batch, so the step is the same batch-weighted mean.
    const share = (corrected: boolean): Map<string, Float32Array> | undefined => {
      const group = contributions.filter((c) => c.corrected === corrected);
      if (group.length === 0) return undefined;
      const weights = group.map((c) => c.batchSize / total);
      const mean = new Map<string, Float32Array>();
      for (const [key, part] of this.host.parts()) {
        const out = new Float32Array(part.sliceLength);
        weightedSum(out, group.map((c) => c.grads.get(key) as Float32Array), weights);
        mean.set(key, out);
      }
      return mean;
    };
    const plainMean = share(false);
    const correctedMean = share(true);
    this.pending = new Map();
    let version: bigint;
    try {
      this.host.check(plainMean, `step ${this.host.version()}'s mean gradient`, correctedMean);
      version = this.host.apply(plainMean, correctedMean);
    } catch (error) {
      if (!(error instanceof TampError && error.code === 'NON_FINITE_UPDATE')) throw error;
      // Its update would leave a variable or slot non-finite: the step ends with nothing changed
      // (counted; the chief reports it), as a mixed-precision loss scaler skips an overflowing step.
      version = this.host.skip();
    }
    for (const c of contributions) for (const r of c.resolvers) r({ version, duplicate: false, dropped: false });
  }
}
