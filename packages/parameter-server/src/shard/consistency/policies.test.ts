/**
 * Each consistency policy on its own, over a real ShardStorage, seen-set,
 * waiters and counters (the pieces a Shard hands its policy), with the host
 * recording every gradient it is asked to apply.
 */
import { describe, expect, it } from 'vitest';
import { ClusterError, type ConsistencyMode, InvalidArgumentError, type ShardConfig, optimizerSettings } from '@tamp/core';
import { CounterSet } from '../counters.js';
import { SeenPushes } from '../idempotency.js';
import { ShardStorage } from '../storage.js';
import { Waiters } from '../waiters.js';
import type { PushMeta } from '../validation.js';
import { AsyncPolicy, POLICIES, type PolicyHost, type PushOutcome, SspPolicy, SyncPolicy } from './index.js';

const WORKERS = ['worker-0', 'worker-1', 'worker-2'];

function setup(mode: ConsistencyMode, opts: { syncReplicas?: number; staleness?: number; workerStep?: bigint } = {}) {
  const config: ShardConfig = {
    shardIndex: 0,
    optimizer: optimizerSettings('sgd', 1),
    version: 0n,
    mode,
    syncReplicas: opts.syncReplicas ?? WORKERS.length,
    staleness: opts.staleness ?? 0,
    workerIds: WORKERS,
    ...(opts.workerStep !== undefined ? { workerStep: opts.workerStep } : {}),
  };
  const storage = ShardStorage.build(config, [{ name: 'w', shape: [2], dtype: 'float32', data: Float32Array.from([10, 20]), sliceStart: 0 }]);
  const seen = new SeenPushes();
  const waiters = new Waiters();
  const counters = new CounterSet();
  const applied: Float32Array[] = [];
  let version = 0n;
  let live = new Set(WORKERS);
  const host: PolicyHost = {
    index: 0,
    config,
    version: () => version,
    live: () => live,
    parts: () => storage.parts,
    markSeen: (id, step) => seen.add(id, step),
    check: (grads, what, corrected) => storage.refuseNonFinite(grads, what, corrected),
    skip: () => {
      version += 1n;
      waiters.wake();
      return version;
    },
    apply: (grads, corrected) => {
      applied.push(((grads ?? corrected)?.get('w@0') as Float32Array).slice());
      storage.apply(grads, corrected);
      version += 1n;
      counters.applied();
      waiters.wake();
      return version;
    },
    counters,
    waitUntil: (ready, signal, why) => waiters.until(ready, signal, why),
  };
  const policy = POLICIES[mode](host);
  return {
    policy,
    applied,
    seen,
    counters,
    version: () => version,
    value: () => Array.from(storage.parts.get('w@0')?.value ?? []),
    /** What Shard.setLive does: new membership, the policy told, waiters re-checked. */
    setLive(ids: string[]) {
      live = new Set(ids);
      policy.membershipChanged();
      waiters.wake();
    },
  };
}

const meta = (workerId: string, step: number, batchSize = 1): PushMeta => ({ workerId, step: BigInt(step), basedOnVersion: 0n, batchSize, tensorCount: 1 });
const grad = (a: number, b: number) => new Map([['w@0', Float32Array.from([a, b])]]);

/** Whether `p` has settled once every pending callback and I/O event has run (a state, not a duration). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('POLICIES', () => {
  it('maps every mode to its policy', () => {
    expect(setup('async').policy).toBeInstanceOf(AsyncPolicy);
    expect(setup('ssp').policy).toBeInstanceOf(SspPolicy);
    expect(setup('sync').policy).toBeInstanceOf(SyncPolicy);
    expect(Object.keys(POLICIES).sort()).toEqual(['async', 'ssp', 'sync']);
  });
});

describe('async policy', () => {
  it('applies each push at once, remembers it, and never holds a pull', async () => {
    const s = setup('async');
    expect(s.policy.gatesPulls).toBe(false);
    const first = s.policy.accept(meta('worker-1', 0), grad(1, 2));
    // Applied before the promise is even awaited.
    expect(s.version()).toBe(1n);
    expect(s.value()).toEqual([9, 18]);
    expect(await first).toEqual({ version: 1n, duplicate: false, dropped: false });
    expect(await s.policy.accept(meta('worker-0', 0), grad(1, 1))).toEqual({ version: 2n, duplicate: false, dropped: false });
    expect(s.seen.has('worker-1', 0n)).toBe(true);
    expect(s.seen.has('worker-2', 0n)).toBe(false);
    expect(await s.policy.duplicate(meta('worker-1', 0))).toEqual({ version: 2n, duplicate: true, dropped: false });
    // A worker far ahead of everyone still pulls at once.
    expect(await settled(s.policy.beforePull('worker-0', 1000n))).toBe(true);
    expect(s.counters.snapshot()).toMatchObject({ applied: 2n, pullsWaited: 0n });
  });
});

describe('ssp policy', () => {
  it('holds a pull more than τ steps ahead of the slowest live worker until that worker pushes', async () => {
    const s = setup('ssp', { staleness: 1 });
    expect(s.policy.gatesPulls).toBe(true);
    // worker-0 runs ahead: it pushed steps 0 and 1, the others nothing (slow by construction: they push only when told).
    await s.policy.accept(meta('worker-0', 0), grad(0, 0));
    await s.policy.accept(meta('worker-0', 1), grad(0, 0));
    expect(await settled(s.policy.beforePull('worker-0', 1n))).toBe(true); // 1 ahead of 0: allowed
    const held = s.policy.beforePull('worker-0', 2n); // 2 ahead: held
    expect(await settled(held)).toBe(false);
    await s.policy.accept(meta('worker-1', 0), grad(0, 0));
    expect(await settled(held)).toBe(false); // worker-2 is still at step 0
    await s.policy.accept(meta('worker-2', 0), grad(0, 0));
    expect(await settled(held)).toBe(true);
    expect(s.counters.snapshot()).toMatchObject({ pullsWaited: 1n, maxLead: 1n, applied: 4n });
  });

  it('measures leads from the step every worker resumes at', async () => {
    const s = setup('ssp', { staleness: 0, workerStep: 50n });
    expect(await settled(s.policy.beforePull('worker-0', 50n))).toBe(true);
    expect(await settled(s.policy.beforePull('worker-0', 51n))).toBe(false);
  });

  it('releases a held pull when the slow worker leaves the membership, and gives up when the signal aborts', async () => {
    const s = setup('ssp', { staleness: 0 });
    const held = s.policy.beforePull('worker-0', 3n);
    expect(await settled(held)).toBe(false);
    s.setLive(['worker-0', 'worker-1']);
    expect(await settled(held)).toBe(false); // worker-1 is still live and at step 0
    s.setLive(['worker-0']);
    expect(await settled(held)).toBe(true);

    const abort = new AbortController();
    const t = setup('ssp', { staleness: 0 });
    const gaveUp = t.policy.beforePull('worker-0', 3n, abort.signal);
    abort.abort();
    await expect(gaveUp).rejects.toThrow(ClusterError);
    await expect(gaveUp).rejects.toMatchObject({ code: 'NOT_READY' });
  });
});

describe('sync policy', () => {
  it('collects one gradient per live worker, then applies their batch-weighted mean summed in worker-id order', async () => {
    const s = setup('sync');
    expect(s.policy.gatesPulls).toBe(false);
    // Element 0 is built so that the order of summation shows: 2^60 and -2^60
    // cancel exactly only if they meet before worker-1's 1 is added.
    const big = 2 ** 60;
    const pushes: Array<Promise<PushOutcome>> = [];
    pushes.push(s.policy.accept(meta('worker-2', 0, 1), grad(-big, 4)));
    pushes.push(s.policy.accept(meta('worker-0', 0, 1), grad(big, 8)));
    expect(s.applied).toHaveLength(0);
    expect(s.version()).toBe(0n);
    pushes.push(s.policy.accept(meta('worker-1', 0, 2), grad(1, 2)));
    expect((await Promise.all(pushes)).map((o) => o.version)).toEqual([1n, 1n, 1n]);
    expect(s.applied).toHaveLength(1);
    const [w0, w1, w2] = [0.25, 0.5, 0.25];
    const byId = [Math.fround(w0 * big + w1 * 1 + w2 * -big), Math.fround(w0 * 8 + w1 * 2 + w2 * 4)];
    const byArrival = Math.fround(w2 * -big + w0 * big + w1 * 1);
    expect(byArrival).not.toBe(byId[0]); // the test can tell the orders apart
    expect(Array.from(s.applied[0] as Float32Array)).toEqual(byId);
    expect(s.value()).toEqual([10 - (byId[0] as number), 20 - (byId[1] as number)]);
  });

  it('drops a late gradient (a backup worker) and refuses one for a step not yet collected', async () => {
    const s = setup('sync', { syncReplicas: 2 });
    await Promise.all([s.policy.accept(meta('worker-0', 0), grad(1, 1)), s.policy.accept(meta('worker-1', 0), grad(1, 1))]);
    expect(await s.policy.accept(meta('worker-2', 0), grad(100, 100))).toEqual({ version: 1n, duplicate: false, dropped: true });
    expect(s.seen.has('worker-2', 0n)).toBe(true);
    expect(s.counters.snapshot()).toMatchObject({ applied: 1n, dropped: 1n });
    expect(s.value()).toEqual([9, 19]);
    await expect(s.policy.accept(meta('worker-0', 2), grad(1, 1))).rejects.toThrow(InvalidArgumentError);
    expect(s.seen.has('worker-0', 2n)).toBe(false); // refused, so a later push for step 2 is not a duplicate
    expect(s.counters.snapshot().refused).toBe(1n);
  });

  it('answers a retry still at the barrier when the step completes, as a duplicate', async () => {
    const s = setup('sync', { syncReplicas: 2 });
    const first = s.policy.accept(meta('worker-0', 0), grad(2, 2));
    const retry = s.policy.duplicate(meta('worker-0', 0));
    expect(await settled(retry)).toBe(false);
    await s.policy.accept(meta('worker-1', 0), grad(2, 2));
    expect(await first).toEqual({ version: 1n, duplicate: false, dropped: false });
    expect(await retry).toEqual({ version: 1n, duplicate: true, dropped: false });
    expect(s.applied).toHaveLength(1);
  });

  it('releases the barrier when a worker is dropped from the membership', async () => {
    const s = setup('sync');
    const a = s.policy.accept(meta('worker-0', 0), grad(1, 1));
    const b = s.policy.accept(meta('worker-1', 0), grad(3, 3));
    expect(await settled(Promise.all([a, b]))).toBe(false);
    s.setLive(['worker-0', 'worker-1']);
    expect((await Promise.all([a, b])).map((o) => o.version)).toEqual([1n, 1n]);
    expect(Array.from(s.applied[0] as Float32Array)).toEqual([2, 2]);
  });

  it('rejects every held push, retries included, when the shard is reassigned', async () => {
    const s = setup('sync');
    const held = s.policy.accept(meta('worker-0', 0), grad(1, 1));
    const retry = s.policy.duplicate(meta('worker-0', 0));
    s.policy.release(new ClusterError('ROLLED_BACK', 'restored'));
    await expect(held).rejects.toMatchObject({ code: 'ROLLED_BACK' });
    await expect(retry).rejects.toMatchObject({ code: 'ROLLED_BACK' });
    expect(s.applied).toHaveLength(0);
  });
});
