import { describe, expect, it } from 'vitest';
import { BatchClaimer } from './batch-claimer.js';
import { BatchClaims } from './batch-claims.js';

type Claim = { start: number; end: number; checkpointStep: number; finished: boolean };

/**
 * The chief's real claims (BatchClaims) behind a door this test opens: each
 * claimBatches call waits until `answer()`, so whether the training loop
 * waited on a claim is decided by construction, not by timing.
 */
function heldChief(plan = { totalBatches: 12, batchesPerEpoch: 12, numWorkers: 1, checkpointEvery: 0 }) {
  const claims = new BatchClaims(plan);
  const waiting: Array<() => void> = [];
  let calls = 0;
  let failNext = false;
  const chief = {
    claimBatches(workerId: string, count: number, done: ReadonlyArray<readonly [number, number]>, idle: boolean): Promise<Claim> {
      calls++;
      const fail = failNext;
      failNext = false;
      return new Promise((resolve, reject) => {
        waiting.push(() => (fail ? reject(new Error('chief unavailable')) : resolve(claims.claim(workerId, count, done.map(([s, e]) => [s, e] as [number, number]), idle))));
      });
    },
  };
  return {
    chief,
    claims,
    get calls() {
      return calls;
    },
    get held() {
      return waiting.length;
    },
    failNextClaim: () => (failNext = true),
    answer: () => waiting.shift()?.(),
  };
}

/** Whether `p` has settled after the microtasks now queued have run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 10; i++) await Promise.resolve();
  return done;
}

/** A claimer in blocks of 4 whose first claim (the idle one, which it waits for) has been answered: it holds batches 0-3. */
async function started() {
  const c = heldChief();
  const claimer = new BatchClaimer(c.chief, 'w0', 4);
  const first = claimer.head();
  expect(await settled(first)).toBe(false);
  c.answer();
  expect(await first).toEqual({ kind: 'batch', batch: 0 });
  return { c, claimer };
}

describe('BatchClaimer', () => {
  it("claims the next block a batch early and takes its answer a step later, so a slow claim is not waited on before the last batch", async () => {
    const { c, claimer } = await started();
    const seen: number[] = [];
    for (let b = 0; b < 4; b++) {
      const head = await claimer.head();
      expect(head).toEqual({ kind: 'batch', batch: b });
      const after = claimer.afterHead();
      if (b < 3) {
        // Batches 0-2: the answer is known without the chief; at batch 2 the next block's claim goes out, unanswered.
        expect(await settled(after)).toBe(true);
        expect(c.calls).toBe(b < 2 ? 1 : 2);
      } else {
        // The last batch of the block: this is where the early claim's answer is taken.
        expect(await settled(after)).toBe(false);
        expect(c.held).toBe(1);
        c.answer();
      }
      const next = await after;
      expect(next).toEqual({ kind: 'batch', batch: b + 1 });
      seen.push(head.kind === 'batch' ? head.batch : -1);
      claimer.done(b);
      claimer.advance();
    }
    expect(seen).toEqual([0, 1, 2, 3]);
    expect(c.calls).toBe(2);
    // The early claim reported what had settled by then (batches 0 and 1); the rest go with the next claim.
    expect(c.claims.doneCount).toBe(2);
  });

  it('trains every batch once to the end, one claim per block, none waited on while a block has two batches left', async () => {
    const c = heldChief();
    const claimer = new BatchClaimer(c.chief, 'w0', 4);
    const trained: number[] = [];
    let waitedEarly = 0;
    for (;;) {
      const headP = claimer.head();
      if (!(await settled(headP))) c.answer();
      const head = await headP;
      if (head.kind === 'finished') break;
      if (head.kind !== 'batch') {
        claimer.advance();
        continue;
      }
      const afterP = claimer.afterHead();
      if (!(await settled(afterP))) {
        if (head.batch % 4 !== 3) waitedEarly++;
        c.answer();
      }
      await afterP;
      trained.push(head.batch);
      claimer.done(head.batch);
      claimer.advance();
    }
    expect(trained).toEqual([...Array(12).keys()]);
    expect(waitedEarly).toBe(0);
    expect(c.claims.finished).toBe(true);
    // One claim per block of 4, the one that finds nothing left (it reports the last settled batches), and the idle one that ends it.
    expect(c.calls).toBe(5);
  });

  it('a claim that fails while it runs ahead is thrown where its answer is taken, never as an unhandled rejection', async () => {
    const { c, claimer } = await started();
    await claimer.afterHead();
    claimer.advance();
    await claimer.afterHead();
    claimer.advance();
    c.failNextClaim();
    await claimer.afterHead(); // batch 2: the early claim goes out
    expect(c.held).toBe(1);
    c.answer(); // and fails at once
    claimer.advance();
    await new Promise((resolve) => setImmediate(resolve));
    await expect(claimer.afterHead()).rejects.toThrow('chief unavailable');
  });
});
