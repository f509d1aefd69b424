import { describe, expect, it } from 'vitest';
import { rpcMetrics } from '@tamp/rpc';
import { CoordinatorState } from './coordinator-state.js';

/** A job of `n` workers: heartbeats every 100 ms, suspected after 1 s of silence at the earliest (3 s at the latest). */
function state(n = 2, log?: (m: string) => void) {
  return new CoordinatorState({ jobId: 'j', numWorkers: n, jobConfigJson: '{}', psAddresses: ['p:1'], heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1_000, epochs: 1, ...(log !== undefined ? { log } : {}) });
}

const beat = { localStep: 5n, epoch: 0, loss: 0.5, samples: 320n, seconds: 1.5 };

/** Clock-like heartbeats of worker `id` from `from` to `to` (ms), one every 100 ms. */
function beats(s: CoordinatorState, id: string, from: number, to: number): void {
  for (let t = from; t <= to; t += 100) s.heartbeat({ workerId: id, ...beat }, t);
}

/** tamp_recoveries_total{role="worker",cause} as the chief's registry holds it now. */
async function workerRecoveriesCounted(cause: string): Promise<number> {
  const text = await rpcMetrics.registry.getSingleMetricAsString('tamp_recoveries_total');
  const line = text.split('\n').find((l) => l.includes('role="worker"') && l.includes(`cause="${cause}"`));
  return Number(line?.split(' ').at(-1) ?? '0');
}

describe('worker faults in report.json `recoveries` (synthetic clock)', () => {
  it('a worker found lost and restarted: one entry, from its last heartbeat to the Join of its slot', async () => {
    const lines: string[] = [];
    const s = state(2, (m) => lines.push(m));
    const before = await workerRecoveriesCounted('restarted');
    s.join('a', 0, 'wasm', 0);
    s.join('b', 1, 'wasm', 0);
    beats(s, 'a', 100, 4_000);
    beats(s, 'b', 100, 1_000);
    s.recordGlobalStep(40n);
    expect(s.checkLost(4_000).map((w) => w.workerId)).toEqual(['worker-1']);
    // Still out: the entry says so.
    expect(s.workerRecoveries).toEqual([
      { role: 'worker', index: 1, cause: 'lost: silent for 3.0 s; not back', outcome: 'not back', detectedAfterSeconds: 3, resumedAfterSeconds: null, stepsLost: 0, restoredStep: null, restoredFrom: null, generation: 0 },
    ]);
    s.recordGlobalStep(52n);
    s.join('b', 1, 'wasm', 5_500); // the restarted process takes its slot back
    expect(s.workerRecoveries).toEqual([
      { role: 'worker', index: 1, cause: 'lost: silent for 3.0 s; restarted', outcome: 'restarted', detectedAfterSeconds: 3, resumedAfterSeconds: 4.5, stepsLost: 0, restoredStep: 52, restoredFrom: 'parameter servers', generation: 0 },
    ]);
    expect(await workerRecoveriesCounted('restarted')).toBe(before + 1);
    expect(lines).toContain('recovery: worker 1 (lost: silent for 3.0 s; restarted): found after 3.0 s of silence, live again after 4.5 s at step 52, 0 steps lost');
  });

  it('a false suspicion: the worker heartbeats again, and each later silence is a fault of its own', async () => {
    const s = state(1);
    const before = await workerRecoveriesCounted('came back');
    s.join('a', 0, 'wasm', 0);
    beats(s, 'a', 100, 900);
    expect(s.checkLost(3_900)).toHaveLength(1);
    s.beginRestore(0n); // a parameter server restored meanwhile: the entry names the generation it came back in
    s.heartbeat({ workerId: 'a', ...beat }, 4_100);
    expect(s.checkLost(8_000)).toHaveLength(1);
    const [first, second] = s.workerRecoveries;
    expect(s.workerRecoveries).toHaveLength(2);
    expect(first).toMatchObject({ index: 0, outcome: 'came back', cause: 'lost: silent for 3.0 s; came back by itself (a false suspicion)', detectedAfterSeconds: 3, resumedAfterSeconds: 3.2, generation: 1 });
    expect(second).toMatchObject({ index: 0, outcome: 'not back', resumedAfterSeconds: null });
    expect(await workerRecoveriesCounted('came back')).toBe(before + 1);
  });

  it('a restart before the failure detector noticed: found and ended by the Join itself', () => {
    const s = state(1);
    s.join('a', 0, 'wasm', 0, 'key');
    beats(s, 'a', 100, 1_000);
    s.join('a', 0, 'wasm', 1_400, 'key'); // the launcher's restart, 0.4 s after the last heartbeat
    expect(s.workerRecoveries).toEqual([expect.objectContaining({ index: 0, outcome: 'restarted', cause: 'restarted before it was found lost (silent for 0.4 s)', detectedAfterSeconds: 0.4, resumedAfterSeconds: 0.4 })]);
    // The first Join of a slot is no fault.
    expect(state(1).workerRecoveries).toEqual([]);
  });

  it('a worker that left with an error, then restarted; one marked lost that finished anyway; a finished one is no fault', () => {
    const s = state(3);
    s.join('a', 0, 'wasm', 0);
    s.join('b', 1, 'wasm', 0);
    s.join('c', 2, 'wasm', 0);
    beats(s, 'a', 100, 500);
    s.leave('a', false, 'out of memory', undefined, 700);
    s.join('a2', 0, 'wasm', 2_700);
    expect(s.checkLost(3_000).map((w) => w.workerId)).toEqual(['worker-1', 'worker-2']);
    s.leave('b', true, 'done', { localStep: 20n, samples: 640n, seconds: 3 }, 3_500);
    s.leave('a2', true, 'done');
    expect(s.workerRecoveries.map((r) => [r.index, r.outcome, r.cause, r.resumedAfterSeconds])).toEqual([
      [0, 'restarted', 'left: out of memory; restarted', 2.2],
      [1, 'came back', 'lost: silent for 3.0 s; came back by itself (a false suspicion)', 3.5],
      [2, 'not back', 'lost: silent for 3.0 s; not back', null],
    ]);
    expect(s.workerRecoveries.every((r) => r.stepsLost === 0)).toBe(true);
  });
});
