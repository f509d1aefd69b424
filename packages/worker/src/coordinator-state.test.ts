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

  it('finds a worker whose connection closed lost after the disconnect grace, long before its heartbeat timeout', () => {
    const s = new CoordinatorState({ jobId: 'j', numWorkers: 2, jobConfigJson: '{}', psAddresses: ['p:1'], heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 10_000, disconnectGraceMs: 1_000, epochs: 3 });
    const g = s.join('a', 0, 'wasm', 0).generation;
    s.join('b', 1, 'wasm', 0);
    s.presence('worker-0', g, true, 0);
    s.presence('worker-1', 1, true, 0);
    s.heartbeat({ workerId: 'worker-0', ...beat }, 400);
    s.presence('worker-0', g, false, 500); // its process died: the operating system closed its connection
    expect(s.nextDisconnectDeadline()).toBe(1_500);
    expect(s.checkLost(1_499)).toEqual([]);
    expect(s.checkLost(1_500).map((w) => w.workerId)).toEqual(['worker-0']);
    expect(s.workers.map((w) => w.state)).toEqual(['lost', 'joined']);
    expect(s.nextDisconnectDeadline()).toBeUndefined();
    expect(s.workerRecoveries).toEqual([expect.objectContaining({ index: 0, outcome: 'not back', detectedAfterSeconds: 1.1, cause: 'lost: its connection to the chief closed, silent for 1.1 s; not back' })]);
    // A restart takes the slot back and ends the fault.
    s.join('a', 0, 'wasm', 2_000);
    expect(s.workerRecoveries).toEqual([expect.objectContaining({ index: 0, outcome: 'restarted', resumedAfterSeconds: 1.6 })]);
  });

  it('does not drop a worker whose closed connection is followed by another call, a heartbeat, or a Leave', () => {
    const s = new CoordinatorState({ jobId: 'j', numWorkers: 3, jobConfigJson: '{}', psAddresses: ['p:1'], heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 10_000, disconnectGraceMs: 1_000, epochs: 3 });
    for (let i = 0; i < 3; i++) s.join(`w${i}`, i, 'wasm', 0);
    for (let i = 0; i < 3; i++) s.presence(`worker-${i}`, 1, true, 0);
    // worker-0: a second call opened before the first one's close was seen (a connection that broke and was replaced).
    s.presence('worker-0', 1, true, 100);
    s.presence('worker-0', 1, false, 200);
    // worker-1: its call closed, then it heartbeat (alive; it will open another).
    s.presence('worker-1', 1, false, 200);
    s.heartbeat({ workerId: 'worker-1', ...beat }, 700);
    // worker-2: finished, then closed its channel.
    s.leave('worker-2', true, 'done', undefined, 300);
    s.presence('worker-2', 1, false, 400);
    expect(s.nextDisconnectDeadline()).toBeUndefined();
    expect(s.checkLost(5_000)).toEqual([]);
    expect(s.workers.map((w) => w.state)).toEqual(['joined', 'joined', 'finished']);
    // A call of an older process of the slot, closing after a restart's Join, is not the new process's.
    s.join('w0', 0, 'wasm', 5_100);
    s.presence('worker-0', 1, false, 5_200);
    expect(s.nextDisconnectDeadline()).toBeUndefined();
    expect(s.workerRecoveries).toEqual([expect.objectContaining({ index: 0, outcome: 'restarted' })]);
  });

  it('leaves a closed connection to the heartbeats when no disconnect grace is set', () => {
    const s = state(1);
    s.join('a', 0, 'wasm', 0);
    s.presence('worker-0', 1, true, 0);
    s.presence('worker-0', 1, false, 10);
    expect(s.nextDisconnectDeadline()).toBeUndefined();
    expect(s.checkLost(900)).toEqual([]);
  });

  it("continues a restarted worker's counts from its predecessor's: samples and seconds always, steps in async and ssp", () => {
    for (const ownStepsFrom of [undefined, 4] as const) {
      const s = new CoordinatorState({ jobId: 'j', numWorkers: 1, jobConfigJson: '{}', psAddresses: ['p:1'], heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1_000, epochs: 3, ...(ownStepsFrom !== undefined ? { ownStepsFrom } : {}) });
      s.join('a', 0, 'wasm', 0);
      s.heartbeat({ workerId: 'worker-0', localStep: 10n, epoch: 1, loss: 0.5, samples: 384n, seconds: 3, computeSeconds: 2 }, 100);
      // Killed and restarted: the new process counts from zero (async: from the job's start step, 4).
      s.join('a', 0, 'wasm', 200);
      s.heartbeat({ workerId: 'worker-0', localStep: ownStepsFrom === undefined ? 12n : 6n, epoch: 1, loss: 0.4, samples: 128n, seconds: 1, computeSeconds: 0.5 }, 300);
      expect(s.workers[0]).toMatchObject({ localStep: 12n, samples: 512n, seconds: 4, computeSeconds: 2.5, joins: 2 });
      s.leave('worker-0', true, 'done', { localStep: ownStepsFrom === undefined ? 15n : 9n, samples: 320n, seconds: 2 }, 400);
      expect(s.workers[0]).toMatchObject({ state: 'finished', localStep: 15n, samples: 704n, seconds: 5 });
      expect(s.samples).toBe(704n);
    }
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

describe('coordinator state transitions', () => {
  it('walks one slot through join, heartbeat, lost, back, lost, rejoin by another process, and leave', () => {
    const changes: string[] = [];
    const s = state(1);
    s.onChange(() => changes.push(s.workers.map((w) => `${w.clientId}:${w.state}`).join(',')));
    expect(s.liveWorkerIds).toEqual(['worker-0']); // expected to join: the servers wait for it
    expect(s.allJoinedOnce).toBe(false);
    s.join('a', -1, 'wasm', 0);
    for (let t = 100; t <= 900; t += 100) s.heartbeat({ workerId: 'a', ...beat }, t); // a clock-like history
    expect(s.checkLost(1_800)).toEqual([]); // silent 0.9 s: under the timeout (the floor)
    expect(s.checkLost(1_901).map((w) => w.workerId)).toEqual(['worker-0']);
    expect(s.liveWorkerIds).toEqual([]);
    expect(s.allLost).toBe(true);
    s.heartbeat({ workerId: 'worker-0', ...beat, localStep: 6n }, 2_000); // back before anyone took its place
    expect(s.workers[0]).toMatchObject({ state: 'joined', localStep: 6n, joins: 1 });
    // After that 1.1 s gap its history is irregular: silent 1.001 s is no longer suspected; 3× the timeout always is.
    expect(s.checkLost(3_001)).toEqual([]);
    expect(s.checkLost(5_000).map((w) => w.workerId)).toEqual(['worker-0']);
    const again = s.join('c', -1, 'webgpu', 5_100); // a new process takes the lost slot, keeping its counts
    expect(again).toMatchObject({ workerId: 'worker-0', clientId: 'c', backend: 'webgpu', state: 'joined', localStep: 6n, samples: 320n, joins: 2 });
    s.leave('c', false, 'crashed');
    expect(s.workers[0]?.state).toBe('left');
    expect(s.trainingOver).toBe(true);
    expect(changes).toEqual(['a:joined', ...new Array<string>(9).fill('a:joined'), 'a:lost', 'a:joined', 'a:lost', 'c:joined', 'c:left']);
  });

  it('leaves the state unchanged when it refuses a request', () => {
    const s = state(2);
    s.join('a', 0, 'wasm', 0);
    const before = JSON.stringify(s.workers, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
    expect(() => s.join('b', 0, 'wasm', 0)).toThrow(/is held by "a"/);
    expect(() => s.leave('ghost', true, 'done')).toThrow(/has not joined/);
    expect(() => s.arriveAtBarrier('ghost', 4)).toThrow(/has not joined/);
    expect(JSON.stringify(s.workers, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))).toBe(before);
    expect(s.barrierStep).toBeUndefined();
    expect(s.liveWorkerIds).toEqual(['worker-0', 'worker-1']);
  });

  it('holds workers at the barrier until released, and refuses a second step while one waits', async () => {
    const s = state(2);
    s.join('a', 0, 'wasm', 0);
    s.join('b', 1, 'wasm', 0);
    const first = s.arriveAtBarrier('worker-0', 4);
    expect(s.barrierReady).toBe(false);
    expect(() => s.arriveAtBarrier('worker-1', 8)).toThrow(/arrived for step 8 while the others wait at step 4/);
    expect(s.barrierArrived).toEqual(['worker-0']);
    const second = s.arriveAtBarrier('worker-1', 4);
    expect(s.barrierReady).toBe(true);
    s.releaseBarrier({ complete: true, manifest: 'm' });
    expect(await first).toEqual({ complete: true, manifest: 'm' });
    expect(await second).toEqual({ complete: true, manifest: 'm' });
    expect(s.barrierStep).toBeUndefined();
    expect(s.barrierReady).toBe(false);
  });

  it('releases at once a worker that arrives at a barrier already released without it (it was wrongly declared lost), and waits again after a sync restore', async () => {
    const s = state(2);
    s.join('a', 0, 'wasm', 0);
    s.join('b', 1, 'wasm', 0);
    // worker-1 is suspected: the barrier at 9 is met by worker-0 alone.
    const first = s.arriveAtBarrier('worker-0', 9);
    s.releaseBarrier({ complete: true, manifest: 'm9' });
    expect(await first).toEqual({ complete: true, manifest: 'm9' });
    // worker-1 comes back behind: step 9's barrier has nobody left, so it does not wait (worker-0 waits for its pushes).
    expect(await s.arriveAtBarrier('worker-1', 9)).toEqual({ complete: false, manifest: '' });
    expect(await s.arriveAtBarrier('worker-1', 6)).toEqual({ complete: false, manifest: '' });
    expect(s.barrierStep).toBeUndefined();
    // A later barrier holds both again.
    const late = s.arriveAtBarrier('worker-1', 12);
    expect(s.barrierStep).toBe(12);
    s.releaseBarrier({ complete: true, manifest: 'm12' });
    expect(await late).toEqual({ complete: true, manifest: 'm12' });
    // A sync restore to step 6 replays from there: the barrier at 9 is met again.
    s.beginRestore(6n);
    const again = s.arriveAtBarrier('worker-0', 9, s.restoreGeneration);
    expect(s.barrierStep).toBe(9);
    expect(s.barrierReady).toBe(false);
    s.releaseBarrier({ complete: true, manifest: 'm9b' });
    expect(await again).toEqual({ complete: true, manifest: 'm9b' });
  });

  it('records what the chief learns: global step, checkpoints, and each epoch score under its own name', () => {
    const s = new CoordinatorState({ jobId: 'j', numWorkers: 1, jobConfigJson: '{}', psAddresses: ['p:1'], heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1_000, epochs: 3, totalSteps: 90 });
    expect(s.totalSteps).toBe(90n);
    expect(Number.isNaN(s.loss)).toBe(true);
    s.join('a', 0, 'wasm', 0);
    s.heartbeat({ workerId: 'a', ...beat }, 10);
    expect(s.loss).toBe(0.5);
    s.recordGlobalStep(12n);
    s.checkpointWritten(10);
    s.epochEvaluated(1, { task: 'classification', score: 0.9 });
    expect([s.globalStep, s.checkpointStep, s.epoch, s.validationAccuracy, s.validationMAP]).toEqual([12n, 10n, 1, 0.9, 0]);
    s.epochEvaluated(2, { task: 'detection', score: 0.4 });
    expect([s.epoch, s.validationMAP]).toEqual([2, 0.4]);
  });

  it('moves the job from running to finishing to done, and refuses joins once it is over', () => {
    const s = state(1);
    s.join('a', 0, 'wasm', 0);
    expect(s.jobState).toBe('running');
    expect(() => s.done()).toThrow(/running cannot become done/);
    s.finishing();
    expect(s.stopRequested).toBe(false);
    s.done();
    expect([s.jobState, s.stopRequested]).toEqual(['done', true]);
    s.fail('late error'); // the report is written: the job stays done
    expect([s.jobState, s.error]).toEqual(['done', '']);
    expect(() => s.join('b', 0, 'wasm', 0)).toThrow(/has already finished/);
  });

  it('fails the job: releases workers at the barrier with nothing written, and keeps the first error', async () => {
    const s = state(1);
    s.join('a', 0, 'wasm', 0);
    const waiting = s.arriveAtBarrier('a', 4);
    s.fail('parameter server 1 is gone');
    s.fail('a second error');
    expect(await waiting).toEqual({ complete: false, manifest: '' });
    expect([s.jobState, s.error, s.stopRequested]).toEqual(['failed', 'parameter server 1 is gone', true]);
    expect(() => s.join('a', 0, 'wasm', 0)).toThrow(/has already failed/);
    expect(() => s.finishing()).toThrow(/failed cannot become finishing/);
  });
});
