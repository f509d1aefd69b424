import { describe, expect, it } from 'vitest';
import { PullAhead } from './pull-ahead.js';

/** A pull function whose answers this test gives, in order: how many started, and whether two ever overlapped. */
function heldPulls() {
  const waiting: Array<{ options: { gen: number }; answer: (n: number) => void; fail: (e: Error) => void }> = [];
  let started = 0;
  let running = 0;
  let overlapped = false;
  const pull = (options: { gen: number }) => {
    started++;
    running++;
    if (running > 1) overlapped = true;
    return new Promise<number>((resolve, reject) => {
      waiting.push({
        options,
        answer: (n) => {
          running--;
          resolve(n);
        },
        fail: (e) => {
          running--;
          reject(e);
        },
      });
    });
  };
  return {
    pull,
    get started() {
      return started;
    },
    get overlapped() {
      return overlapped;
    },
    get waiting() {
      return waiting.length;
    },
    next: () => {
      const w = waiting.shift();
      if (w === undefined) throw new Error('no pull is waiting');
      return w;
    },
  };
}

/** Let the promise callbacks queued now run. */
const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe('PullAhead', () => {
  it('a pull asked ahead starts the next one as its answer comes in, and the next request takes it: one pull per step', async () => {
    const h = heldPulls();
    const pulls = new PullAhead(h.pull);
    const first = pulls.pull({ gen: 0 }, { take: true, ahead: true });
    await flush();
    h.next().answer(1);
    expect(await first).toBe(1);
    // The next pull left with the answer, before anyone asked for it.
    expect(h.started).toBe(2);
    expect(h.waiting).toBe(1);
    const second = pulls.pull({ gen: 0 }, { take: true, ahead: true });
    await flush();
    expect(h.started).toBe(2);
    h.next().answer(2);
    expect(await second).toBe(2);
    expect(h.started).toBe(3);
    // Not ahead: the held pull is taken and nothing more starts.
    const third = pulls.pull({ gen: 0 }, { take: true });
    await flush();
    h.next().answer(3);
    expect(await third).toBe(3);
    await flush();
    expect(h.started).toBe(3);
    expect(pulls.counts).toEqual({ ahead: 2, taken: 2 });
    expect(h.overlapped).toBe(false);
  });

  it('without take, or for other options (a new restore generation), the held pull is dropped: a fresh one starts only after it ends', async () => {
    const h = heldPulls();
    const pulls = new PullAhead(h.pull);
    const first = pulls.pull({ gen: 0 }, { ahead: true });
    await flush();
    h.next().answer(1);
    await first;
    // A pull for generation 1 does not take generation 0's, and waits for it to end before starting.
    const fresh = pulls.pull({ gen: 1 }, { take: true });
    await flush();
    expect(h.started).toBe(2);
    h.next().answer(99); // the dropped pull ends
    await flush();
    expect(h.started).toBe(3);
    const w = h.next();
    expect(w.options).toEqual({ gen: 1 });
    w.answer(2);
    expect(await fresh).toBe(2);
    expect(pulls.counts.taken).toBe(0);
    expect(h.overlapped).toBe(false);
  });

  it("a pull started ahead that fails fails the request that takes it; one that nobody takes is no unhandled rejection", async () => {
    const h = heldPulls();
    const pulls = new PullAhead(h.pull);
    const first = pulls.pull({ gen: 0 }, { take: true, ahead: true });
    await flush();
    h.next().answer(1);
    await first;
    h.next().fail(new Error('shard unavailable'));
    await expect(pulls.pull({ gen: 0 }, { take: true, ahead: true })).rejects.toThrow('shard unavailable');
    // A failed pull starts nothing ahead; the next request pulls afresh.
    expect(h.started).toBe(2);
    const again = pulls.pull({ gen: 0 }, { take: true, ahead: true });
    await flush();
    h.next().answer(3);
    expect(await again).toBe(3);
    // This one's held pull fails with no request to take it: no unhandled rejection (vitest fails the run on one).
    h.next().fail(new Error('closed'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.overlapped).toBe(false);
  });
});
