/**
 * A push whose update would make a variable or an optimizer slot non-finite
 * (a finite 1e20 gradient: Adam squares it into Infinity) against a real
 * parameter server over gRPC: refused as NON_FINITE_UPDATE with nothing
 * changed, counted in ShardStatus, and the job's next sound push is applied.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type ConsistencyMode, type WireTensor, optimizerSettings } from '@tamp/core';
import { CHIEF_SECRET_KEY, GrpcStatus, RpcError, WORKER_TOKEN_KEY, newSecret, slotToken } from '@tamp/rpc';
import { ShardClient } from './client.js';
import { type RunningParameterServer, startParameterServer } from './server.js';

const JOB = 'non-finite-job';
const SECRET = newSecret();
let ps: RunningParameterServer | undefined;
const clients: ShardClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await ps?.close();
  ps = undefined;
});

const w = (data: number[]): WireTensor[] => [{ name: 'w', shape: [data.length], dtype: 'float32', data: Float32Array.from(data), sliceStart: 0 }];

async function setup(mode: ConsistencyMode, workerIds: string[]) {
  ps = await startParameterServer({ jobId: JOB, index: 0, chiefSecret: SECRET });
  const address = `127.0.0.1:${ps.port}`;
  const chief = new ShardClient(address, JOB, { rpc: { metadata: { [CHIEF_SECRET_KEY]: SECRET } } });
  clients.push(chief);
  await chief.assign({ shardIndex: 0, optimizer: optimizerSettings('adam', 0.01), version: 0n, mode, syncReplicas: workerIds.length, staleness: 0, workerIds }, w([0.5, -0.5, 1, 2]));
  const worker = (id: string) => {
    const c = new ShardClient(address, JOB, { rpc: { metadata: { [WORKER_TOKEN_KEY]: slotToken(SECRET, id, 1) } } });
    clients.push(c);
    return c;
  };
  /** Values and Adam's slots, as the chief's pull and the shard itself hold them. */
  const state = async () => ({ pulled: Array.from((await chief.pull('chief')).tensors[0]?.data ?? []), parts: ps?.shard.partList.map((p) => [Array.from(p.value), ...p.slots.map((s) => Array.from(s))]), opt: ps?.shard.optimizerState() });
  return { chief, worker, state };
}

async function refusal(p: Promise<unknown>): Promise<RpcError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RpcError);
  return error as RpcError;
}

describe('a push whose update would be non-finite, against a real server', () => {
  it('async: refused with NON_FINITE_UPDATE, nothing changed, counted; the next sound push applies', async () => {
    const { chief, worker, state } = await setup('async', ['worker-0']);
    const w0 = worker('worker-0');
    await w0.push({ workerId: 'worker-0', step: 0n, basedOnVersion: 0n, batchSize: 1 }, w([0.1, 0.2, 0.3, 0.4]));
    const before = await state();
    const e = await refusal(w0.push({ workerId: 'worker-0', step: 1n, basedOnVersion: 1n, batchSize: 1 }, w([0.1, 1e20, 0.3, 0.4])));
    expect(e.code).toBe('NON_FINITE_UPDATE');
    expect(GrpcStatus[e.grpcCode]).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/"w:v" Infinity at element 1/);
    expect(await state()).toEqual(before);
    const status = await chief.status();
    expect(status.pushesNonFinite).toBe(1n);
    expect(status.version).toBe(1n);
    expect(status.pushesApplied).toBe(1n);
    // Not remembered as taken: the same step with a sound gradient is applied.
    const ok = await w0.push({ workerId: 'worker-0', step: 1n, basedOnVersion: 1n, batchSize: 1 }, w([0.1, 0.2, 0.3, 0.4]));
    expect(ok.version).toBe(2n);
    expect((await state()).pulled.every(Number.isFinite)).toBe(true);
  });

  it('sync: the step whose mean update would overflow is skipped (version advances, values and slots kept), counted', async () => {
    const { chief, worker, state } = await setup('sync', ['worker-0', 'worker-1']);
    const [w0, w1] = [worker('worker-0'), worker('worker-1')];
    await Promise.all([
      w0.push({ workerId: 'worker-0', step: 0n, basedOnVersion: 0n, batchSize: 1 }, w([0.1, 0.2, 0.3, 0.4])),
      w1.push({ workerId: 'worker-1', step: 0n, basedOnVersion: 0n, batchSize: 1 }, w([0.1, 0.2, 0.3, 0.4])),
    ]);
    const before = await state();
    const answers = await Promise.all([
      w0.push({ workerId: 'worker-0', step: 1n, basedOnVersion: 1n, batchSize: 1 }, w([0.1, 0.2, 1e20, 0.4])),
      w1.push({ workerId: 'worker-1', step: 1n, basedOnVersion: 1n, batchSize: 1 }, w([0.1, 0.2, 0.3, 0.4])),
    ]);
    expect(answers.map((a) => a.version)).toEqual([2n, 2n]);
    expect(await state()).toEqual(before);
    const status = await chief.status();
    expect(status.pushesNonFinite).toBe(1n);
    expect(status.pushesApplied).toBe(1n);
  });
});
