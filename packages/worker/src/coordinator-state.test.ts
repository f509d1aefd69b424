import { describe, expect, it } from 'vitest';
import { ClusterError } from '@tamp/core';
import { CoordinatorState } from './coordinator-state.js';

function state(n = 2) {
  return new CoordinatorState({ jobId: 'j', numWorkers: n, jobConfigJson: '{}', psAddresses: ['p:1'], heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1_000, epochs: 3 });
}

const beat = { localStep: 5n, epoch: 1, loss: 0.5, accuracy: 0, samples: 320n, seconds: 1.5 };

describe('coordinator membership', () => {
  it('assigns task indexes, keeps them across rejoins, refuses extra workers', () => {
    const s = state(2);
    expect(s.join('a', -1, 'wasm', 0).workerId).toBe('worker-0');
    expect(s.join('b', -1, 'wasm', 0).workerId).toBe('worker-1');
    expect(() => s.join('c', -1, 'wasm', 0)).toThrow(/all 2 worker slots/);
    expect(s.join('a', -1, 'wasm', 0).joins).toBe(2);
    expect(() => s.join('c', 1, 'wasm', 0)).toThrow(/task index 1 is held by "b"/);
    expect(() => s.join('c', 7, 'wasm', 0)).toThrow(/out of range/);
  });

  it('marks silent workers lost, lets them come back, and counts epochs and samples', () => {
    const s = state(2);
    s.join('a', 0, 'wasm', 0);
    s.join('b', 1, 'wasm', 0);
    s.heartbeat({ workerId: 'worker-0', ...beat }, 500);
    expect(s.checkLost(1_200).map((w) => w.workerId)).toEqual(['worker-1']);
    expect(s.active.map((w) => w.workerId)).toEqual(['worker-0']);
    expect(s.completedEpochs).toBe(1);
    s.heartbeat({ workerId: 'b', ...beat, epoch: 2, samples: 640n, seconds: 2 }, 1_300);
    expect(s.workers[1]?.state).toBe('joined');
    expect(s.samples).toBe(960n);
    expect(s.samplesPerSecond).toBe(480);
    s.leave('worker-0', true, 'done');
    expect(s.workers[0]?.epoch).toBe(3);
    expect(s.trainingOver).toBe(false);
    s.leave('b', false, 'crashed');
    expect(s.trainingOver).toBe(true);
  });

  it('keeps the final counts of a Leave when a heartbeat sent before it arrives after it', () => {
    const s = state(1);
    s.join('a', 0, 'wasm', 0);
    s.heartbeat({ workerId: 'worker-0', ...beat }, 100);
    s.leave('worker-0', true, 'done', { localStep: 10n, samples: 640n, seconds: 3 });
    s.heartbeat({ workerId: 'worker-0', ...beat, localStep: 9n, samples: 576n }, 200);
    expect(s.workers[0]).toMatchObject({ state: 'finished', localStep: 10n, samples: 640n, seconds: 3 });
    expect(s.samples).toBe(640n);
  });

  it('refuses heartbeats from workers that never joined', () => {
    const s = state(1);
    expect(() => s.heartbeat({ workerId: 'ghost', ...beat })).toThrow(ClusterError);
    expect(() => s.heartbeat({ workerId: 'ghost', ...beat })).toThrow(/has not joined/);
  });
});
