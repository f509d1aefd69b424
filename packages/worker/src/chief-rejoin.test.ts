/**
 * A restarted chief taking its running job over (chief-rejoin.ts), against
 * real parts: two parameter servers on free ports, a first chief that
 * assigns them and admits workers, then a second chief with the same secret
 * on the same servers. Its security: only a worker holding the slot's newest
 * token resumes without a Join; a forged or superseded token does not.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { optimizerSettings } from '@tamp/core';
import { type RunningParameterServer, ShardClient, startParameterServer } from '@tamp/parameter-server';
import { WORKER_KEY_KEY, WORKER_TOKEN_KEY, newSecret, slotToken } from '@tamp/rpc';
import { Chief } from './chief.js';
import { CoordinatorClient } from './coordinator-client.js';
import type { TrainingSettings } from './job-config.js';

const JOB = 'rejoin-test';
const SECRET = newSecret();
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
let out: string;
let chiefs: Chief[];
let clients: Array<{ close(): void }>;

beforeEach(async () => {
  servers = await Promise.all([0, 1].map((index) => startParameterServer({ jobId: JOB, index, chiefSecret: SECRET })));
  out = mkdtempSync(join(tmpdir(), 'tamp-rejoin-'));
  chiefs = [];
  clients = [];
});

afterEach(async () => {
  for (const c of clients) c.close();
  for (const c of chiefs) await c.close();
  await Promise.all(servers.map((s) => s.close()));
  rmSync(out, { recursive: true, force: true });
});

async function chief(): Promise<Chief> {
  const c = await Chief.create({
    jobId: JOB,
    psAddresses: servers.map((s) => `127.0.0.1:${s.port}`),
    numWorkers: 2,
    training,
    out,
    backend: 'cpu',
    heartbeatIntervalMs: 50,
    heartbeatTimeoutMs: 5_000,
    chiefSecret: SECRET,
  });
  chiefs.push(c);
  return c;
}

/** The chief crashes: its Coordinator goes, the parameter servers keep the job. */
async function stop(c: Chief): Promise<void> {
  chiefs = chiefs.filter((x) => x !== c);
  await c.close();
}

/** A worker's client of the chief at `port`, with its slot key and (optionally) a token. */
function worker(port: number, key: string, token?: string): CoordinatorClient {
  const c = new CoordinatorClient(`127.0.0.1:${port}`, JOB, 5_000, { metadata: { [WORKER_KEY_KEY]: key, ...(token !== undefined ? { [WORKER_TOKEN_KEY]: token } : {}) } });
  clients.push(c);
  return c;
}

/** Worker `id` pulls from shard `i` with `token` (the server then knows that token's generation). */
async function pullAs(i: number, id: string, token: string): Promise<void> {
  const s = new ShardClient(`127.0.0.1:${servers[i]?.port}`, JOB, { rpc: { metadata: { [WORKER_TOKEN_KEY]: token } } });
  clients.push(s);
  await s.pull(id);
}

const progress = { localStep: 3n, epoch: 0, loss: 0.5, samples: 96n, seconds: 1.5 };

describe('a restarted chief', () => {
  it('takes the running job over: step, workers with their tokens, counts from heartbeats; forged and superseded tokens are refused', async () => {
    const first = await chief();
    expect(first.rejoining).toBe(false);
    await first.startOrAdoptShards();
    const port = await first.startCoordinator();
    // worker-0 joins twice (a restarted process with the same key): its token is of generation 2; worker-1 once.
    const w0 = worker(port, 'key-0');
    await w0.join('c0', 0, 'cpu');
    const token0 = (await w0.join('c0', 0, 'cpu')).workerToken;
    const token1 = (await worker(port, 'key-1').join('c1', 1, 'cpu')).workerToken;
    expect(token0.startsWith('2.')).toBe(true);
    for (const i of [0, 1]) {
      await pullAs(i, 'worker-0', token0);
      await pullAs(i, 'worker-1', token1);
    }
    // The servers tell the token generations to the chief alone.
    const asWorker = new ShardClient(`127.0.0.1:${servers[0]?.port}`, JOB, { rpc: { metadata: { [WORKER_TOKEN_KEY]: token1 } } });
    clients.push(asWorker);
    expect((await asWorker.status()).chiefRejoinSlots).toEqual([]);
    await stop(first);

    const second = await chief();
    expect(second.rejoining).toBe(true);
    await second.startOrAdoptShards();
    const port2 = await second.startCoordinator();
    const state = second.state;
    // Rebuilt from the servers: both slots, live, waiting for their holders.
    expect(state.workers.map((w) => [w.workerId, w.state, w.generation])).toEqual([
      ['worker-0', 'joined', 2],
      ['worker-1', 'joined', 1],
    ]);

    // A forged token (another secret) and worker-0's superseded first token resume nothing.
    await expect(worker(port2, 'x', slotToken(newSecret(), 'worker-0', 2)).heartbeat('worker-0', progress)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(worker(port2, 'x', slotToken(SECRET, 'worker-0', 1)).heartbeat('worker-0', progress)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    // A token made for another slot does not take this one.
    await expect(worker(port2, 'x', token1).heartbeat('worker-0', progress)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });

    // The holder resumes with its token: no Join; its counts come with the heartbeat, with how long the chief was silent.
    await worker(port2, 'key-0', token0).heartbeat('worker-0', { ...progress, chiefNoticedSeconds: 0.5, chiefSilentSeconds: 4, backend: 'wasm' });
    const w = state.workers[0];
    expect([w?.state, w?.generation, w?.localStep, w?.samples, w?.backend]).toEqual(['joined', 2, 3n, 96n, 'wasm']);
    expect(state.chiefSilence).toEqual({ noticed: 0.5, silent: 4 });

    // Another process with another key cannot take the live slot; the holder's restart (same key) can, with a newer token.
    await expect(worker(port2, 'stranger').join('s', 0, 'cpu')).rejects.toMatchObject({ code: 'NOT_READY' });
    const again = await worker(port2, 'key-0').join('c0', 0, 'cpu');
    expect(again.workerToken.startsWith('3.')).toBe(true);
    // The superseded token no longer works with this chief either.
    await expect(worker(port2, 'key-0', token0).heartbeat('worker-0', progress)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('takes back the checkpoints and epoch records under --out; a barrier at a checkpoint already written is released at once', async () => {
    const first = await chief();
    await first.startOrAdoptShards();
    await stop(first);
    // What the first chief wrote before it died: a checkpoint at step 4 whose manifest holds epoch 1's record.
    const dirName = join(out, 'checkpoints', 'step-000000004');
    mkdirSync(dirName, { recursive: true });
    const record = { epoch: 1, loss: 0.7, validationAccuracy: 0.4, samplesPerSecond: 100, globalStep: 4 };
    writeFileSync(join(dirName, 'manifest.json'), JSON.stringify({ format: 1, jobId: JOB, step: 4, versions: ['4', '4'], time: '', training, numWorkers: 2, checkpointEvery: 4, variables: [], parts: [], history: [record], samples: 256 }));

    const second = await chief();
    await second.startOrAdoptShards();
    await second.startCoordinator();
    expect(second.history).toEqual([record]);
    expect(second.checkpoints).toEqual([join(dirName, 'manifest.json')]);
    expect(second.state.checkpointStep).toBe(4n);
    // A worker whose release the crash swallowed arrives again: not held for workers that trained on.
    second.state.join('c0', 0, 'cpu');
    await expect(second.state.arriveAtBarrier('worker-0', 4)).resolves.toEqual({ complete: false, manifest: '' });
  });

  it('a restarted chief does not delete --out even with --overwrite', async () => {
    const first = await chief();
    await first.startOrAdoptShards();
    await stop(first);
    // What the job wrote so far (a checkpoint's folder): a new job with --overwrite would delete it.
    const written = join(out, 'checkpoints', 'step-000000004');
    mkdirSync(written, { recursive: true });
    const second = await Chief.create({
      jobId: JOB,
      psAddresses: servers.map((s) => `127.0.0.1:${s.port}`),
      numWorkers: 2,
      training,
      out,
      overwrite: true,
      backend: 'cpu',
      chiefSecret: SECRET,
    });
    chiefs.push(second);
    expect(second.rejoining).toBe(true);
    expect(existsSync(written)).toBe(true);
  });
});
