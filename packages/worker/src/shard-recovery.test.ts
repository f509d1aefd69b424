/**
 * The chief's recovery of a parameter server that came back without its
 * state, step by step against real servers: one is closed and a fresh one
 * started on its port; the next refreshGlobalStep restores it from the
 * newest checkpoint in a new restore generation (sync: every shard goes back
 * to that step; async: only the lost one), and records the recovery. Workers'
 * requests of the old generation are then refused with ROLLED_BACK, nothing
 * applied, and those of the new one are served.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ConsistencyMode, type WireTensor } from '@tamp/core';
import { type RunningParameterServer, ShardClient, startParameterServer } from '@tamp/parameter-server';
import { RpcError, WORKER_TOKEN_KEY, newSecret, rpcMetrics, slotToken } from '@tamp/rpc';
import { saveCheckpoint } from './checkpoints.js';
import { Chief } from './chief.js';
import { type ShardFixture, closeShardFixture, openShardFixture, tinyTraining } from './chief-shards.fixture.js';

const JOB = 'recovery-test';
const SECRET = newSecret();
const training = tinyTraining;

let fixture: ShardFixture;
let servers: RunningParameterServer[];
let out: string;
let chief: Chief | undefined;
let clients: ShardClient[];

beforeEach(async () => {
  fixture = await openShardFixture(JOB, SECRET, 'tamp-recovery-');
  ({ servers, out, clients } = fixture);
});

afterEach(async () => {
  await closeShardFixture(fixture, chief);
  chief = undefined;
});

async function makeChief(mode: ConsistencyMode): Promise<Chief> {
  chief = await Chief.create({
    jobId: JOB,
    psAddresses: servers.map((s) => `127.0.0.1:${s.port}`),
    numWorkers: 2,
    training: training(mode),
    out,
    backend: 'cpu',
    heartbeatIntervalMs: 50,
    peerTimeoutMs: 5_000,
    chiefSecret: SECRET,
  });
  await chief.startShards();
  await chief.startCoordinator();
  return chief;
}

/** Shard `i` as worker `id` calls it (the slot token the chief would have given). */
function asWorker(i: number, id: string): ShardClient {
  const c = new ShardClient(`127.0.0.1:${servers[i]?.port}`, JOB, { rpc: { metadata: { [WORKER_TOKEN_KEY]: slotToken(SECRET, id, 1) } } });
  clients.push(c);
  return c;
}

const ones = (s: RunningParameterServer) => new Map(s.shard.partList.map((p) => [`${p.name}@${p.sliceStart}`, new Float32Array(p.sliceLength).fill(1)]));
const wire = (s: RunningParameterServer, value: number): WireTensor[] => s.shard.partList.map((p) => ({ name: p.name, shape: p.shape, dtype: 'float32', data: new Float32Array(p.sliceLength).fill(value), sliceStart: p.sliceStart }));

/** Apply `steps` sync steps (or async pushes) of gradients of ones directly on the shards. */
async function train(steps: number, mode: ConsistencyMode): Promise<void> {
  for (let k = 0; k < steps; k++) {
    for (const s of servers) {
      const grads = ones(s);
      const step = s.shard.version;
      const workers = mode === 'sync' ? ['worker-0', 'worker-1'] : ['worker-0'];
      await Promise.all(workers.map((workerId) => s.shard.acceptPush({ workerId, step, basedOnVersion: step, batchSize: 1, tensorCount: grads.size }, grads)));
    }
  }
}

/** Close server i and start a fresh one (no state) on its port: what a supervisor's restart looks like. */
async function restart(i: number): Promise<void> {
  const port = servers[i]?.port as number;
  await servers[i]?.close();
  servers[i] = await startParameterServer({ jobId: JOB, index: i, port, chiefSecret: SECRET });
}

const values = (s: RunningParameterServer | undefined) => s?.shard.partList.map((p) => [Array.from(p.value), ...p.slots.map((x) => Array.from(x))]);

async function refused(p: Promise<unknown>): Promise<string> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RpcError);
  return (error as RpcError).code;
}

const recoveriesCounted = async () => Number((await rpcMetrics.registry.getSingleMetricAsString('tamp_recoveries_total')).match(/cause="[^"]*"} (\d+)/)?.[1] ?? '0');

describe('a parameter server that came back without its state', () => {
  it('sync: every shard goes back to the newest checkpoint in a new generation; old-generation requests are refused, nothing applied', async () => {
    const c = await makeChief('sync');
    await train(2, 'sync');
    await c.refreshGlobalStep();
    const job = c.job;
    const manifest = await saveCheckpoint(c.params, out, { jobId: JOB, training: job.training, numWorkers: 2, checkpointEvery: 2, variables: job.specs, history: [], samples: 0 }, 2);
    const atCheckpoint = values(servers[0]);
    await train(3, 'sync');
    await c.refreshGlobalStep();
    // worker-0's push for step 5 waits at the survivor's barrier for worker-1.
    const held = asWorker(0, 'worker-0').push({ workerId: 'worker-0', step: 5n, basedOnVersion: 5n, batchSize: 1 }, wire(servers[0] as RunningParameterServer, 1));
    const heldRefusal = refused(held);
    await expect.poll(() => servers[0]?.shard.counters.pushesReceived).toBe(1n);
    await restart(1);
    const before = await recoveriesCounted();

    await c.refreshGlobalStep();
    expect(await heldRefusal).toBe('ROLLED_BACK');
    for (const s of servers) {
      expect(s.shard.version).toBe(2n);
      expect(s.shard.restoreGeneration).toBe(1n);
    }
    expect(values(servers[0])).toEqual(atCheckpoint);
    expect(c.state.restoreGeneration).toBe(1n);
    expect(c.state.restoreStep).toBe(2n);
    expect(c.recoveries).toEqual([
      expect.objectContaining({ role: 'ps', index: 1, cause: 'restarted without its state', stepsLost: 3, restoredStep: 2, generation: 1, restoredFrom: manifest.replace(/\/manifest\.json$/, '') }),
    ]);
    expect(await recoveriesCounted()).toBe(before + 1);

    // Old generation: refused with nothing applied, however late. The new one: served.
    const w1 = asWorker(0, 'worker-1');
    expect(await refused(w1.push({ workerId: 'worker-1', step: 5n, basedOnVersion: 5n, batchSize: 1 }, wire(servers[0] as RunningParameterServer, 1)))).toBe('ROLLED_BACK');
    expect(await refused(w1.pull('worker-1', { minVersion: 2n }))).toBe('ROLLED_BACK');
    expect(values(servers[0])).toEqual(atCheckpoint);
    expect((await w1.pull('worker-1', { minVersion: 2n, restoreGeneration: 1n })).version).toBe(2n);
    await Promise.all(
      ['worker-0', 'worker-1'].map((id) => asWorker(0, id).push({ workerId: id, step: 2n, basedOnVersion: 2n, batchSize: 1, restoreGeneration: 1n }, wire(servers[0] as RunningParameterServer, 1))),
    );
    expect(servers[0]?.shard.version).toBe(3n);
    // A newer generation than a sync shard's own (its restore still under way) is told to retry.
    expect(await refused(w1.pull('worker-1', { restoreGeneration: 2n }))).toBe('NOT_READY');
    // The checkpoint barrier refuses the old generation too.
    c.state.join('client-0', 0, 'cpu');
    expect(() => c.state.arriveAtBarrier('worker-0', 4, 0n)).toThrow(expect.objectContaining({ code: 'ROLLED_BACK' }));

    // The next pass sees every server healthy: nothing more to recover.
    await c.refreshGlobalStep();
    expect(c.recoveries).toHaveLength(1);
  });

  it('async: only the lost shard is restored; the survivor keeps its updates and serves newer generations', async () => {
    const c = await makeChief('async');
    await train(2, 'async');
    await c.refreshGlobalStep();
    const job = c.job;
    await saveCheckpoint(c.params, out, { jobId: JOB, training: job.training, numWorkers: 2, checkpointEvery: 2, variables: job.specs, history: [], samples: 0 }, 2);
    await train(3, 'async');
    await c.refreshGlobalStep();
    const survivor = values(servers[0]);
    await restart(1);
    await c.refreshGlobalStep();
    expect(servers[1]?.shard.version).toBe(2n);
    expect(servers[1]?.shard.restoreGeneration).toBe(1n);
    expect(servers[0]?.shard.version).toBe(5n);
    expect(servers[0]?.shard.restoreGeneration).toBe(0n);
    expect(values(servers[0])).toEqual(survivor);
    expect(c.recoveries).toEqual([expect.objectContaining({ index: 1, stepsLost: 3, restoredStep: 2 })]);
    const w = (i: number) => asWorker(i, 'worker-0');
    // Made before the restore: based on a version the restored shard no longer has, refused as rolled back (not as invalid).
    expect(await refused(w(1).push({ workerId: 'worker-0', step: 9n, basedOnVersion: 5n, batchSize: 1 }, wire(servers[1] as RunningParameterServer, 1)))).toBe('ROLLED_BACK');
    expect((await w(1).push({ workerId: 'worker-0', step: 9n, basedOnVersion: 2n, batchSize: 1, restoreGeneration: 1n }, wire(servers[1] as RunningParameterServer, 1))).version).toBe(3n);
    expect((await w(0).push({ workerId: 'worker-0', step: 9n, basedOnVersion: 5n, batchSize: 1, restoreGeneration: 1n }, wire(servers[0] as RunningParameterServer, 1))).version).toBe(6n);
  });

  it("before any checkpoint: restored to the job's start", async () => {
    const c = await makeChief('sync');
    const start = values(servers[0]);
    await train(2, 'sync');
    await c.refreshGlobalStep();
    await restart(0);
    await c.refreshGlobalStep();
    expect(c.recoveries[0]).toMatchObject({ index: 0, restoredFrom: 'start', restoredStep: 0, stepsLost: 2 });
    for (const s of servers) expect(s.shard.version).toBe(0n);
    expect(values(servers[0])).toEqual(start);
  });
});
