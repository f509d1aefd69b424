import { describe, expect, it } from 'vitest';
import { BatchClaims } from './batch-claims.js';
import { BatchRanges } from './batch-ranges.js';
import { CoordinatorState } from './coordinator-state.js';

const plan = { totalBatches: 40, batchesPerEpoch: 20, numWorkers: 2, checkpointEvery: 0 };

describe('BatchRanges', () => {
  it('merges, splits and takes the first range', () => {
    const r = new BatchRanges([
      [5, 8],
      [0, 2],
    ]);
    r.add(2, 5);
    expect(r.toArray()).toEqual([[0, 8]]);
    r.remove(3, 4);
    expect(r.toArray()).toEqual([
      [0, 3],
      [4, 8],
    ]);
    expect(r.size).toBe(7);
    expect(r.prefixEnd).toBe(3);
    expect(r.takeFirst(2)).toEqual([0, 2]);
    expect(r.toArray()).toEqual([
      [2, 3],
      [4, 8],
    ]);
    expect(r.has(2)).toBe(true);
    expect(r.has(3)).toBe(false);
    expect(r.prefixEnd).toBe(0);
  });
});

describe('BatchClaims', () => {
  it('hands out blocks in order and ends when every batch is reported done', () => {
    const c = new BatchClaims(plan);
    expect(c.claim('w0', 4, [])).toEqual({ start: 0, end: 4, checkpointStep: 0, finished: false });
    expect(c.claim('w1', 4, [])).toMatchObject({ start: 4, end: 8 });
    let done: Array<[number, number]> = [[0, 4]];
    // Whole blocks while a worker's share of what is left (ceil(left ÷ 2)) is at least 4, then tapering to the end.
    const blocks = [8, 12, 16, 20, 24, 28, 32].map((i) => [i, i + 4]).concat([
      [36, 38],
      [38, 39],
      [39, 40],
    ]);
    for (const [start, end] of blocks as Array<[number, number]>) {
      expect(c.claim('w0', 4, done)).toMatchObject({ start, end });
      done = [[start, end]];
    }
    // All handed out: w0 waits (w1 still holds 4..8), then both report and it is over.
    expect(c.claim('w0', 4, done, true)).toEqual({ start: 0, end: 0, checkpointStep: 0, finished: false });
    expect(c.finished).toBe(false);
    expect(c.claim('w1', 4, [[4, 8]], true)).toMatchObject({ finished: true });
    expect(c.doneCount).toBe(40);
    expect(c.reassigned).toBe(0);
    expect(c.completedEpochs).toBe(2);
  });

  it("a lost worker's unreported batches go to the next claim before any new one, and are counted", () => {
    const c = new BatchClaims(plan);
    c.claim('w0', 4, []);
    c.claim('w1', 4, []);
    // w1 reported 4 and 5 done with its next claim, then was lost holding 6, 7 and 8..11.
    c.claim('w1', 4, [[4, 6]]);
    expect(c.release('w1')).toBe(6);
    expect(c.reassigned).toBe(6);
    expect(c.claim('w0', 4, [[0, 4]])).toMatchObject({ start: 6, end: 10 });
    expect(c.claim('w0', 4, [[6, 10]])).toMatchObject({ start: 10, end: 12 });
    expect(c.claim('w0', 4, [[10, 12]])).toMatchObject({ start: 12, end: 16 });
  });

  it('a batch reported by a worker wrongly declared lost is not handed out again', () => {
    const c = new BatchClaims(plan);
    c.claim('w1', 4, []);
    c.release('w1');
    // It comes back and reports its block: nothing of it is pending any more.
    c.claim('w1', 0, [[0, 4]]);
    expect(c.claim('w0', 4, [])).toMatchObject({ start: 4, end: 8 });
  });

  it('an idle worker hands back what it never got (a claim whose answer was lost), not counted as reassigned', () => {
    const c = new BatchClaims(plan);
    c.claim('w0', 4, []); // the answer is lost
    expect(c.claim('w0', 4, [], true)).toMatchObject({ start: 0, end: 4 });
    expect(c.reassigned).toBe(0);
  });

  it('pauses the hand-out at a checkpoint boundary until its barrier is released', () => {
    const c = new BatchClaims({ ...plan, checkpointEvery: 4 }); // checkpoint step 4 = batch 8
    expect(c.claim('w0', 4, [])).toMatchObject({ start: 0, end: 4, checkpointStep: 0 });
    // Tapered: half of the 4 left before the boundary, then half of the 2.
    expect(c.claim('w1', 4, [])).toMatchObject({ start: 4, end: 6, checkpointStep: 0 });
    expect(c.claim('w1', 4, [])).toMatchObject({ start: 6, end: 7, checkpointStep: 0 });
    expect(c.claim('w1', 4, [])).toMatchObject({ start: 7, end: 8, checkpointStep: 4 });
    expect(c.claim('w0', 4, [[0, 4]], true)).toEqual({ start: 0, end: 0, checkpointStep: 4, finished: false });
    expect(c.isIdle('w0')).toBe(true);
    c.claim('w1', 0, [[4, 8]], true);
    expect(c.progress.done).toEqual([[0, 8]]);
    expect(c.paused).toBe(true);
    c.barrierReleased(4);
    expect(c.paused).toBe(false);
    expect(c.claim('w0', 4, [])).toMatchObject({ start: 8, end: 12, checkpointStep: 0 });
    expect(c.isIdle('w0')).toBe(false);
  });

  it('tapers the blocks toward a checkpoint boundary, so four workers arrive within a batch of each other', () => {
    // 4 workers, blocks of 4, a checkpoint every 27 steps (batch 108), as in a LeNet-300-100 epoch of 110 batches.
    const c = new BatchClaims({ totalBatches: 216, batchesPerEpoch: 108, numWorkers: 4, checkpointEvery: 27 });
    // Each worker takes one batch a round and claims again when its block is used up (in turn: w0, w1, w2, w3).
    const held = new Map<string, number>();
    const trained = new Map<string, number>();
    const sizes: number[] = [];
    for (let round = 0; round < 200 && !c.paused; round++) {
      for (const w of ['w0', 'w1', 'w2', 'w3']) {
        if ((held.get(w) ?? 0) === 0) {
          const claim = c.claim(w, 4, []);
          if (claim.end > claim.start) sizes.push(claim.end - claim.start);
          held.set(w, claim.end - claim.start);
        }
        const n = held.get(w) ?? 0;
        if (n > 0) {
          held.set(w, n - 1);
          trained.set(w, (trained.get(w) ?? 0) + 1);
        }
      }
    }
    expect(c.paused).toBe(true);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(108);
    // Whole blocks while a share of what is left is 4 or more, then 3, 3, 2 and single batches.
    expect(sizes).toEqual([...new Array<number>(24).fill(4), 3, 3, 2, 1, 1, 1, 1]);
    // What each worker still holds at the pause: at most one batch more than another.
    const left = [...held.values()];
    expect(Math.max(...left) - Math.min(...left)).toBeLessThanOrEqual(1);
    // The last claims ask for 4 and would have got them without the taper: one worker would hold 4 more.
    expect(Math.max(...left)).toBeLessThanOrEqual(1);
  });

  it('resumes from a checkpoint: gaps first, then past the furthest batch done', () => {
    const c = new BatchClaims(plan, {
      progress: {
        done: [
          [0, 10],
          [12, 16],
        ],
        total: 40,
      },
      checkpointStep: 5,
    });
    expect(c.claim('w0', 4, [])).toMatchObject({ start: 10, end: 12 });
    expect(c.claim('w0', 4, [])).toMatchObject({ start: 16, end: 20 });
    expect(c.doneCount).toBe(14);
  });
});

describe('CoordinatorState with batch claims', () => {
  const state = () =>
    new CoordinatorState({ jobId: 'j', jobConfigJson: '{}', psAddresses: ['a'], heartbeatIntervalMs: 100, numWorkers: 2, heartbeatTimeoutMs: 1_000, epochs: 2, claims: { plan, idleNotLive: true } });

  it('hands back the batches of a worker declared lost, and of one that left unfinished', () => {
    const s = state();
    s.join('c0', 0, 'cpu', 0);
    s.join('c1', 1, 'cpu', 0);
    s.claimBatches('worker-0', 4, []);
    s.claimBatches('worker-1', 4, []);
    s.heartbeat({ workerId: 'worker-0', localStep: 1n, epoch: 0, loss: 1, samples: 1n, seconds: 1 }, 10_000);
    expect(s.checkLost(10_000).map((w) => w.workerId)).toEqual(['worker-1']);
    expect(s.claims?.reassigned).toBe(4);
    expect(s.claimBatches('worker-0', 4, [[0, 4]])).toMatchObject({ start: 4, end: 8 });
    s.leave('worker-0', false, 'crashed');
    expect(s.claims?.reassigned).toBe(8);
  });

  it('counts an epoch complete only when all of its batches are done, and leaves idle workers out of the live set', () => {
    const s = state();
    s.join('c0', 0, 'cpu', 0);
    s.join('c1', 1, 'cpu', 0);
    s.claimBatches('worker-0', 16, []);
    s.claimBatches('worker-1', 4, []);
    s.claimBatches('worker-0', 0, [[0, 16]], true);
    expect(s.completedEpochs).toBe(0);
    expect(s.liveWorkerIds).toEqual(['worker-1']);
    s.claimBatches('worker-1', 4, [[16, 20]]);
    expect(s.completedEpochs).toBe(1);
  });

  it('refuses a claim in a sync job', () => {
    const s = new CoordinatorState({ jobId: 'j', jobConfigJson: '{}', psAddresses: ['a'], heartbeatIntervalMs: 100, numWorkers: 1, heartbeatTimeoutMs: 1_000, epochs: 1 });
    s.join('c0', 0, 'cpu', 0);
    expect(() => s.claimBatches('worker-0', 4, [])).toThrow(/sync job/);
  });
});
