/**
 * DGC's momentum correction at a real parameter server: a momentum-corrected
 * push (the worker kept the momentum) is applied with plain SGD at the job's
 * learning rate and leaves the momentum slot alone; other pushes get the
 * momentum step; a job that did not agree refuses corrected pushes with
 * nothing applied.
 */
import { describe, expect, it } from 'vitest';
import { type ConsistencyMode, type EncodedTensor, type ShardConfig, bytesOf, optimizerSettings, parseWireCodec } from '@tamp/core';
import { RpcError } from '@tamp/rpc';
import type { ShardClient } from './client.js';
import { realServer } from './server.fixture.js';

const LR = 0.5;
const M = 0.9;
const W0 = [1, 2, 3, 4];
const server = realServer('dgc-job');
const client = (address: string, as: string) => server.client(address, as);

async function start(mode: ConsistencyMode, config: Partial<ShardConfig>): Promise<{ address: string; chief: ShardClient }> {
  const address = await server.start();
  const chief = client(address, 'chief');
  await chief.assign(
    {
      shardIndex: 0,
      optimizer: { ...optimizerSettings('momentum', LR), momentum: M },
      version: 0n,
      mode,
      syncReplicas: 2,
      staleness: 0,
      workerIds: ['worker-0', 'worker-1'],
      wirePush: parseWireCodec('topk:0.5', 'push'),
      ...config,
    },
    [{ name: 'w', shape: [4], dtype: 'float32', data: Float32Array.from(W0), sliceStart: 0 }],
  );
  return { address, chief };
}

/** A gradient as a dense push (what a top-k sender sends during its dense warm-up). */
function dense(g: number[]): EncodedTensor[] {
  return [{ name: 'w', shape: [4], sliceStart: 0, length: 4, codec: 'fp32', bytes: bytesOf(Float32Array.from(g)) }];
}

async function weights(chief: ShardClient): Promise<{ version: bigint; w: number[] }> {
  const { version, tensors } = await chief.pull('chief');
  return { version, w: [...(tensors[0]?.data as Float32Array)] };
}

function expectClose(got: number[], want: number[]): void {
  for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i] as number, 5);
}

describe('momentum-corrected pushes', () => {
  it('get plain SGD and leave the servers momentum alone; other pushes get the momentum step (async)', async () => {
    const { address, chief } = await start('async', { momentumCorrection: true });
    const worker = client(address, 'worker-0');
    const spec = { workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1 };
    const g1 = [1, -1, 0.5, 0];
    await worker.pushEncoded({ ...spec, step: 0n, momentumCorrected: true }, dense(g1));
    let w = W0.map((x, i) => x - LR * (g1[i] as number));
    expectClose((await weights(chief)).w, w);
    // A plain push: the momentum slot starts at 0, so accum = g2.
    const g2 = [0.25, 0.5, -0.5, 1];
    await worker.pushEncoded({ ...spec, step: 1n }, dense(g2));
    w = w.map((x, i) => x - LR * (g2[i] as number));
    expectClose((await weights(chief)).w, w);
    // Corrected again: plain SGD, accum still g2.
    const g3 = [0, 0, 1, 0];
    await worker.pushEncoded({ ...spec, step: 2n, momentumCorrected: true }, dense(g3));
    w = w.map((x, i) => x - LR * (g3[i] as number));
    // Plain again: accum = m·g2 + g4 (the corrected push did not decay or feed it).
    const g4 = [1, 1, 1, 1];
    await worker.pushEncoded({ ...spec, step: 3n }, dense(g4));
    w = w.map((x, i) => x - LR * (M * (g2[i] as number) + (g4[i] as number)));
    const after = await weights(chief);
    expect(after.version).toBe(4n);
    expectClose(after.w, w);
  });

  it('in sync, are summed apart from plain ones and applied in the same step with their share of the batch', async () => {
    const { address, chief } = await start('sync', { momentumCorrection: true });
    const g0 = [1, 2, 3, 4];
    const g1 = [4, 3, 2, 1];
    await Promise.all([
      client(address, 'worker-0').pushEncoded({ workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1, step: 0n, momentumCorrected: true }, dense(g0)),
      client(address, 'worker-1').pushEncoded({ workerId: 'worker-1', basedOnVersion: 0n, batchSize: 3, step: 0n }, dense(g1)),
    ]);
    const after = await weights(chief);
    expect(after.version).toBe(1n);
    // Momentum step on worker-1's share (3/4 of the batch; accum from 0), plain SGD on worker-0's (1/4).
    expectClose(after.w, W0.map((x, i) => x - LR * 0.75 * (g1[i] as number) - LR * 0.25 * (g0[i] as number)));
  });

  it('are refused with nothing applied when the job did not agree to momentum correction', async () => {
    const { address, chief } = await start('async', {});
    const worker = client(address, 'worker-0');
    const e = await worker.pushEncoded({ workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1, step: 0n, momentumCorrected: true }, dense([1, 1, 1, 1])).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(e).toBeInstanceOf(RpcError);
    expect((e as RpcError).code).toBe('INVALID_ARGUMENT');
    expect((e as RpcError).message).toMatch(/did not agree to momentum correction/);
    expect(await weights(chief)).toEqual({ version: 0n, w: W0 });
    // The same step without the mark is still taken: the refusal recorded nothing.
    await worker.pushEncoded({ workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1, step: 0n }, dense([1, 1, 1, 1]));
    expect((await weights(chief)).version).toBe(1n);
  });

  it('are checked for a non-finite result through the plain SGD they get, not the momentum step: one only plain SGD overflows is refused, nothing applied', async () => {
    const { address, chief } = await start('async', { momentumCorrection: true });
    const worker = client(address, 'worker-0');
    const spec = { workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1, momentumCorrected: true };
    const huge = [3e38, 0, 0, 0];
    // A plain push leaves the server's momentum at 3e38 (w ≈ −1.5e38).
    await worker.pushEncoded({ ...spec, step: 0n, momentumCorrected: false }, dense(huge));
    // A corrected one: the momentum step would overflow (0.9·3e38 + 3e38), plain SGD does not (w ≈ −3e38): applied.
    await worker.pushEncoded({ ...spec, step: 1n }, dense(huge));
    const before = await weights(chief);
    expect(before.version).toBe(2n);
    expect(before.w.every(Number.isFinite)).toBe(true);
    // Once more, plain SGD itself overflows float32.
    const e = await worker.pushEncoded({ ...spec, step: 2n }, dense(huge)).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(e).toBeInstanceOf(RpcError);
    expect((e as RpcError).code).toBe('NON_FINITE_UPDATE');
    expect(await weights(chief)).toEqual(before);
  });

  it('need the momentum optimizer and a top-k or auto push codec at assign', async () => {
    const refused = start('async', { momentumCorrection: true, optimizer: optimizerSettings('adam', 0.01) }).then(
      () => undefined,
      (error: unknown) => error,
    );
    const e = await refused;
    expect(e).toBeInstanceOf(RpcError);
    expect((e as RpcError).message).toMatch(/momentum correction needs the momentum optimizer/);
  });
});
