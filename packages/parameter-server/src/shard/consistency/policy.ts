/**
 * A consistency mode as a unit: what it does with a validated push and what
 * a worker's pull waits for. The shard picks one by looking its mode up in
 * POLICIES (index.ts) at each Assign; the policy reaches the shard only
 * through a PolicyHost.
 */
import type { ShardConfig } from '@tamp/core/base';
import type { CounterSet } from '../counters.js';
import type { ShardPart } from '../storage.js';
import type { PushMeta } from '../validation.js';

export interface PushOutcome {
  readonly version: bigint;
  readonly duplicate: boolean;
  readonly dropped: boolean;
}

/** What a policy may see and do of its shard. */
export interface PolicyHost {
  readonly index: number;
  readonly config: ShardConfig;
  /** Updates applied so far. */
  version(): bigint;
  /** Workers still training (the chief's view). */
  live(): ReadonlySet<string>;
  parts(): ReadonlyMap<string, ShardPart>;
  /** Remember (worker, step) so a retry is answered as a duplicate. */
  markSeen(workerId: string, step: bigint): void;
  /**
   * Throw NON_FINITE_UPDATE (counted, nothing changed) when applying these
   * gradients (and momentum-corrected ones, as `apply` would) would leave a
   * variable or slot non-finite.
   */
  check(grads: ReadonlyMap<string, Float32Array> | undefined, what: string, corrected?: ReadonlyMap<string, Float32Array>): void;
  /**
   * Apply one checked gradient per part as one optimizer step (counted,
   * waiters re-checked); `corrected`, momentum-corrected gradients, with
   * plain SGD in the same step. Returns the new version.
   */
  apply(grads: ReadonlyMap<string, Float32Array> | undefined, corrected?: ReadonlyMap<string, Float32Array>): bigint;
  /** sync: end the step without changing any variable or slot (its update was refused by check); returns the new version. */
  skip(): bigint;
  readonly counters: CounterSet;
  /** Resolve once `ready()` holds after some change (or reject NOT_READY when the signal aborts). */
  waitUntil(ready: () => boolean, signal: AbortSignal | undefined, why: () => string): Promise<void>;
}

export interface ConsistencyPolicy {
  /** True when workers' pulls must pass beforePull (a gate that may hold them). */
  readonly gatesPulls: boolean;
  /** Take a validated push for a (worker, step) not seen before; a refusal is counted (host.counters) and rejects. */
  accept(meta: PushMeta, grads: ReadonlyMap<string, Float32Array>): Promise<PushOutcome>;
  /** Answer a push for a (worker, step) already taken. */
  duplicate(meta: PushMeta): Promise<PushOutcome>;
  /** Resolve once worker `workerId` may read the parameters it computes `step` with. */
  beforePull(workerId: string, step: bigint, signal?: AbortSignal): Promise<void>;
  /** The live workers changed (a step or a gate may now be complete). */
  membershipChanged(): void;
  /** A backup (--ps-replicas 1) learns that its primary took (worker, step): ssp records the worker's progress. */
  replicated(workerId: string, step: bigint): void;
  /** The shard is being reassigned (restored from a checkpoint): reject every push still held with `error`. */
  release(error: Error): void;
}

/** The answer to a retry of a push already applied (or dropped). */
export function seenBefore(host: PolicyHost): Promise<PushOutcome> {
  return Promise.resolve({ version: host.version(), duplicate: true, dropped: false });
}
