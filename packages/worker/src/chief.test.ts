/**
 * The chief's steps one at a time, against real parts: two parameter servers
 * on free ports, the chief's real Coordinator (workers over gRPC where the
 * wire matters, the state's own methods where time must be exact), real
 * checkpoint and report files.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterError, optimizerSettings } from '@tamp/core';
import { CHIEF_READER_ID, type RunningParameterServer, ShardClient, startParameterServer } from '@tamp/parameter-server';
import { CHIEF_SECRET_KEY, newSecret } from '@tamp/rpc';
import { findLatestCheckpoint } from './checkpoints.js';
import { Chief } from './chief.js';
import type { ChiefOptions } from './chief-job.js';
import { CoordinatorClient } from './coordinator-client.js';
import type { CoordinatorState } from './coordinator-state.js';
import type { TrainingSettings } from './job-config.js';

const JOB = 'chief-test';
const TIMEOUT_MS = 1_000;

const training: TrainingSettings = {
  model: 'mlp-tiny',
  dataset: 'mnist',
  epochs: 1,
  epochSize: 256,
  batchSize: 32,
  optimizer: optimizerSettings('sgd', 0.1),
  mode: 'sync',
  staleness: 0,
  backupWorkers: 0,
  seed: 1,
};

let servers: RunningParameterServer[];
let shutdowns: string[];
let out: string;
let chief: Chief | undefined;
let clients: Array<{ close(): void }>;
/** The job's chief secret: the chief is given it, and the tests read the shards as the chief does. */
const SECRET = newSecret();

beforeEach(async () => {
  shutdowns = [];
  servers = await Promise.all([0, 1].map((index) => startParameterServer({ jobId: JOB, index, onShutdown: (reason) => shutdowns.push(reason) })));
  out = mkdtempSync(join(tmpdir(), 'tamp-chief-'));
  clients = [];
});

afterEach(async () => {
  for (const c of clients) c.close();
  await chief?.close();
  chief = undefined;
  await Promise.all(servers.map((s) => s.close()));
  rmSync(out, { recursive: true, force: true });
});

async function makeChief(overrides: Partial<ChiefOptions> = {}): Promise<Chief> {
  chief = await Chief.create({
    jobId: JOB,
    psAddresses: servers.map((s) => `127.0.0.1:${s.port}`),
    numWorkers: 2,
    training,
    out,
    backend: 'cpu',
    heartbeatIntervalMs: 50,
    heartbeatTimeoutMs: TIMEOUT_MS,
    joinTimeoutMs: 60_000,
    chiefSecret: SECRET,
    ...overrides,
  });
  return chief;
}

function shardClient(i: number): ShardClient {
  const c = new ShardClient(`127.0.0.1:${servers[i]?.port}`, JOB, { rpc: { metadata: { [CHIEF_SECRET_KEY]: SECRET } } });
  clients.push(c);
  return c;
}

function coordinatorClient(port: number): CoordinatorClient {
  const c = new CoordinatorClient(`127.0.0.1:${port}`, JOB);
  clients.push(c);
  return c;
}

/** Resolves once `n` workers wait at the barrier (the state says so on every change). */
function arrived(state: CoordinatorState, n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (state.barrierArrived.length >= n) {
        off();
        resolve();
      }
    };
    const off = state.onChange(check);
    check();
  });
}

const progress = { localStep: 4n, epoch: 0, loss: 0.9, samples: 128n, seconds: 2 };

describe('chief steps', () => {
  it('startShards assigns every placed part, the values, and the workers to each server', async () => {
    const c = await makeChief();
    expect(c.job.placement.shards.every((parts) => parts.length > 0)).toBe(true);
    await c.startShards();
    for (const [i, parts] of c.job.placement.shards.entries()) {
      const status = await shardClient(i).status();
      expect(status.initialized).toBe(true);
      expect(status.optimizer).toBe('sgd');
      expect(status.liveWorkerIds).toEqual(['worker-0', 'worker-1']);
      const held = status.variables.map((v) => [v.name, Number(v.sliceStart), Number(v.sliceLength)]).sort();
      expect(held).toEqual(parts.map((p) => [p.name, p.sliceStart, p.sliceLength]).sort());
    }
    const { values } = await c.params.pullAll(CHIEF_READER_ID);
    expect([...values.keys()].sort()).toEqual([...c.job.initial.keys()].sort());
    for (const [name, initial] of c.job.initial) expect(values.get(name)).toEqual(initial);
  });

  it('syncMembership tells every shard the live workers, again after one is lost and when it is back', async () => {
    const c = await makeChief();
    await c.startShards();
    await c.startCoordinator();
    const state = c.state;
    state.join('a', 0, 'cpu', 0);
    state.join('b', 1, 'cpu', 0);
    const live = async () => Promise.all([0, 1].map(async (i) => (await shardClient(i).status()).liveWorkerIds));

    expect(await c.syncMembership(500)).toEqual(['worker-0', 'worker-1']);
    expect(await c.syncMembership(600)).toBeUndefined();

    state.heartbeat({ workerId: 'worker-1', ...progress }, 5_000);
    expect(await c.syncMembership(5_000 + TIMEOUT_MS / 2)).toEqual(['worker-1']);
    expect(state.workers.map((w) => w.state)).toEqual(['lost', 'joined']);
    expect(await live()).toEqual([['worker-1'], ['worker-1']]);

    state.heartbeat({ workerId: 'worker-0', ...progress }, 5_600);
    expect(await c.syncMembership(5_700)).toEqual(['worker-0', 'worker-1']);
    expect(await live()).toEqual([
      ['worker-0', 'worker-1'],
      ['worker-0', 'worker-1'],
    ]);
  });

  it('checkWorkers fails the job when workers do not join in time, or when every worker stays lost past the grace period', async () => {
    const GRACE_MS = 5_000;
    const c = await makeChief({ joinTimeoutMs: 60_000, lostGraceMs: GRACE_MS });
    await c.startShards();
    await c.startCoordinator();
    const state = c.state;
    state.join('a', 0, 'cpu', 0);
    expect(() => c.checkWorkers(Date.now())).not.toThrow();
    expect(() => c.checkWorkers(Date.now() + 120_000)).toThrow(/only 1 of 2 workers joined within 60 s/);
    state.join('b', 1, 'cpu', 0);
    // Both silent for 3× the timeout: lost. Within the grace period the job carries on.
    const t0 = 3 * TIMEOUT_MS;
    await c.syncMembership(t0);
    expect(state.allLost).toBe(true);
    expect(() => c.checkWorkers(t0)).not.toThrow();
    expect(() => c.checkWorkers(t0 + GRACE_MS - 1)).not.toThrow();
    // One comes back (it was only slow): the grace period starts afresh when all are lost again.
    const t1 = t0 + GRACE_MS - 1;
    state.heartbeat({ workerId: 'worker-0', localStep: 1n, epoch: 0, loss: 1, samples: 32n, seconds: 1 }, t1);
    expect(() => c.checkWorkers(t1)).not.toThrow();
    const t2 = t1 + 3 * TIMEOUT_MS;
    await c.syncMembership(t2);
    expect(state.allLost).toBe(true);
    expect(() => c.checkWorkers(t2)).not.toThrow();
    expect(() => c.checkWorkers(t2 + GRACE_MS - 1)).not.toThrow();
    let caught: unknown;
    try {
      c.checkWorkers(t2 + GRACE_MS);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ClusterError);
    expect((caught as ClusterError).code).toBe('JOB_FAILED');
    expect((caught as ClusterError).message).toMatch(/every worker was lost before finishing and none came back within 5 s/);
  });

  it('refreshGlobalStep fails the job, naming it, once parameter server 0 stays silent past the peer timeout', async () => {
    const c = await makeChief({ peerTimeoutMs: 5_000 });
    await c.startShards();
    await c.startCoordinator();
    expect(await c.refreshGlobalStep(1_000)).toBe(0n);
    await servers[0]?.close();
    await expect(c.refreshGlobalStep(2_000)).resolves.toBe(0n); // silent 1 s: logged, asked again next pass
    await expect(c.refreshGlobalStep(6_000)).resolves.toBe(0n); // silent 5 s: the limit itself
    let caught: unknown;
    try {
      await c.refreshGlobalStep(6_001);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ClusterError);
    expect((caught as ClusterError).code).toBe('PEER_UNAVAILABLE');
    expect((caught as ClusterError).message).toContain(`parameter server 0 at 127.0.0.1:${servers[0]?.port} has not answered for 5 s, past the peer timeout of 5 s`);
  });

  it('the checkpoint barrier writes a complete checkpoint only when every training worker waits', async () => {
    const c = await makeChief();
    await c.startShards();
    const port = await c.startCoordinator();
    const w0 = coordinatorClient(port);
    const w1 = coordinatorClient(port);
    w0.setWorkerToken((await w0.join('a', 0, 'cpu')).workerToken);
    w1.setWorkerToken((await w1.join('b', 1, 'cpu')).workerToken);

    const first = w0.checkpointBarrier('worker-0', 4, 60_000);
    await arrived(c.state, 1);
    expect(await c.serveCheckpointBarrier()).toBeUndefined();
    expect(findLatestCheckpoint(out, () => {})).toBeUndefined();

    const second = w1.checkpointBarrier('worker-1', 4, 60_000);
    await arrived(c.state, 2);
    const manifest = await c.serveCheckpointBarrier();
    expect(manifest).toBe(join(out, 'checkpoints', 'step-000000004', 'manifest.json'));
    expect(await first).toEqual({ complete: true, manifest });
    expect(await second).toEqual({ complete: true, manifest });
    expect(c.state.barrierStep).toBeUndefined();
    // Released once the shards copied their state; the manifest follows their writes.
    await c.checkpointsCommitted();
    expect(c.state.checkpointStep).toBe(4n);
    expect(c.checkpoints).toEqual([manifest]);

    const restored = findLatestCheckpoint(out, (m) => expect.fail(m));
    expect(restored?.manifest).toMatchObject({ jobId: JOB, step: 4, numWorkers: 2, versions: ['0', '0'] });
    expect(restored?.manifest.parts.map((p) => p.shard)).toEqual([0, 1]);
    for (const [name, initial] of c.job.initial) expect(restored?.values.get(name)).toEqual(initial);
  });

  it('the checkpoint barrier does not wait for a lost worker', async () => {
    const c = await makeChief();
    await c.startShards();
    await c.startCoordinator();
    const state = c.state;
    state.join('a', 0, 'cpu', 0);
    state.join('b', 1, 'cpu', 0);
    state.heartbeat({ workerId: 'worker-0', ...progress }, 5_000);
    const waiting = state.arriveAtBarrier('worker-0', 8);
    expect(await c.serveCheckpointBarrier()).toBeUndefined();
    await c.syncMembership(5_000 + TIMEOUT_MS / 2); // worker-1 is silent since 0: lost
    const manifest = await c.serveCheckpointBarrier();
    expect(manifest).toBeDefined();
    expect(await waiting).toEqual({ complete: true, manifest });
    await c.checkpointsCommitted();
    expect(existsSync(manifest as string)).toBe(true);
  });

  it('evaluates finished epochs and writes report.json with the documented fields', async () => {
    const c = await makeChief();
    expect(c.job.stepsEach).toBe(4); // 256 samples an epoch over 2 workers x 32
    await c.startShards();
    const port = await c.startCoordinator();
    const state = c.state;
    state.join('a', 0, 'cpu');
    state.join('b', 1, 'cpu');
    expect(await c.evaluateEpochs()).toEqual([]);
    state.leave('worker-0', true, 'done', { localStep: 4n, samples: 128n, seconds: 2, computeSeconds: 1.5, pushWaitSeconds: 0.25, pullWaitSeconds: 0.125 });
    state.leave('worker-1', true, 'done', { localStep: 4n, samples: 128n, seconds: 4 });
    expect(await c.tick()).toBe(true);
    expect(c.history).toHaveLength(1);
    expect(c.history[0]).toMatchObject({ epoch: 1, globalStep: 0 });
    expect(c.history[0]?.validationAccuracy).toBeGreaterThan(0);
    expect(c.history[0]).not.toHaveProperty('validationMAP');
    const status = await coordinatorClient(port).jobStatus();
    expect(status).toMatchObject({ epoch: 1, validationAccuracy: c.history[0]?.validationAccuracy, validationMap: 0, state: 'running' });

    const report = await c.finish();
    expect(state.jobState).toBe('done');
    expect(shutdowns).toEqual(['job done', 'job done']);
    const written = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as Record<string, unknown>;
    expect(written).toEqual(JSON.parse(JSON.stringify(report)));
    expect(written).toMatchObject({
      jobId: JOB,
      model: 'mlp-tiny',
      dataset: 'mnist',
      backend: 'cpu',
      mode: 'sync',
      workers: 2,
      ps: 2,
      epochs: 1,
      batchSize: 32,
      optimizer: 'sgd',
      learningRate: 0.1,
      seed: 1,
      steps: 0,
      samples: 256,
      trainSeconds: 4,
      samplesPerSecond: 64,
      task: 'classification',
      lostWorkers: 0,
      droppedGradients: 0,
      backupWorkers: 0,
      staleness: 0,
      sspWaits: 0,
      maxLead: 0,
      modelPath: join(out, 'model', 'model.json'),
      wirePush: 'fp32',
      wirePull: 'fp32',
      wireErrorFeedback: true,
      wireSparseBiases: false,
      // Nothing was pushed or pulled by a worker here (the chief's own pulls are not counted).
      pushBytesPerStep: 0,
      pullBytesPerStep: 0,
    });
    for (const field of ['testAccuracy', 'validationAccuracy', 'testLoss']) expect(typeof written[field]).toBe('number');
    expect(written).not.toHaveProperty('mAP');
    expect(written.history).toEqual(JSON.parse(JSON.stringify(c.history)));
    expect(written.workerStats).toEqual([
      { workerId: 'worker-0', backend: 'cpu', state: 'finished', steps: 4, samples: 128, seconds: 2, samplesPerSecond: 64, joins: 1, computeSeconds: 1.5, pushWaitSeconds: 0.25, pullWaitSeconds: 0.125 },
      { workerId: 'worker-1', backend: 'cpu', state: 'finished', steps: 4, samples: 128, seconds: 4, samplesPerSecond: 32, joins: 1, computeSeconds: 0, pushWaitSeconds: 0, pullWaitSeconds: 0 },
    ]);
    expect(written.checkpoints).toEqual([join(out, 'checkpoints', 'step-000000004', 'manifest.json')]);
    expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
  });

  it("gives a detector's validation mAP its own field, in the epoch record, the job status and the progress", async () => {
    const seen: Array<Record<string, unknown>> = [];
    const c = await makeChief({
      numWorkers: 1,
      training: { ...training, model: 'shapes-detector', dataset: 'shapes', epochSize: 32 },
      backend: 'wasm',
      onProgress: (p) => seen.push({ ...p }),
    });
    await c.startShards();
    const port = await c.startCoordinator();
    c.state.join('a', 0, 'cpu');
    c.state.leave('worker-0', true, 'done', { localStep: 1n, samples: 32n, seconds: 1 });
    expect(await c.tick()).toBe(true);
    const record = c.history[0];
    expect(record).toMatchObject({ epoch: 1 });
    expect(record).not.toHaveProperty('validationAccuracy');
    expect(typeof record?.validationMAP).toBe('number');
    expect(c.state.validationMAP).toBe(record?.validationMAP);
    expect(c.state.validationAccuracy).toBe(0);
    const status = await coordinatorClient(port).jobStatus();
    expect(status).toMatchObject({ validationAccuracy: 0, validationMap: record?.validationMAP });
    expect(seen.at(-1)).toMatchObject({ epoch: 1, validationMAP: record?.validationMAP });
    expect(seen.at(-1)).not.toHaveProperty('validationAccuracy');
  });
});
