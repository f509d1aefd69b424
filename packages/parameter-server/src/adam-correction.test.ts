/**
 * Top-k's Adam correction at a real parameter server: a worker's real
 * PushEncoder keeps Adam's moments and sends the top-k of Adam's accumulated
 * direction, marked Adam-corrected, and the shard applies plain SGD to it;
 * plain pushes in the same job get Adam on the shard as usual. A job must
 * have agreed to it at assign (adam with top-k, or --wire auto).
 */
import { describe, expect, it } from 'vitest';
import { OPTIMIZER_STATE_TENSOR, type ShardConfig, bytesOf, decodeTopk, optimizerSettings, parseWireCodec } from '@tamp/core';
import { RpcError } from '@tamp/rpc';
import type { ShardClient } from './client.js';
import { realServer } from './server.fixture.js';
import { PushEncoder } from './wire/push-encoder.js';

const LR = 0.1;
const W0 = [1, 2, 3, 4];
const server = realServer('adam-correction-job');
const client = (address: string, as: string) => server.client(address, as);

async function start(config: Partial<ShardConfig>): Promise<{ address: string; chief: ShardClient }> {
  const address = await server.start();
  const chief = client(address, 'chief');
  await chief.assign(
    {
      shardIndex: 0,
      optimizer: optimizerSettings('adam', LR),
      version: 0n,
      mode: 'async',
      syncReplicas: 1,
      staleness: 0,
      workerIds: ['worker-0'],
      wirePush: parseWireCodec('topk:0.5', 'push'),
      ...config,
    },
    [{ name: 'w', shape: [2, 2], dtype: 'float32', data: Float32Array.from(W0), sliceStart: 0 }],
  );
  return { address, chief };
}

const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
// 'w' is a kernel (rank 2): top-k would send a bias (rank 1) whole.
const part = (g: readonly number[]) => [{ name: 'w', shape: [2, 2], dtype: 'float32' as const, data: Float32Array.from(g), sliceStart: 0 }];
const values = async (chief: ShardClient) => [...((await chief.pull('chief')).tensors[0]?.data as Float32Array)];

describe("top-k's Adam correction", () => {
  it('moves each coordinate by the learning rate times the Adam direction the worker sent (plain SGD)', async () => {
    const { address, chief } = await start({ adamCorrection: true });
    const worker = client(address, 'worker-0');
    const encoder = new PushEncoder({ codec: parseWireCodec('topk:0.5', 'push'), adam: ADAM });
    expect(encoder.adamCorrected).toBe(true);
    const grads = [
      [4, -0.01, 0.5, 0],
      [4, -0.01, 0.5, 0.2],
      [-1, 0.02, 0.5, 0.2],
      [0, 0, 0, 0],
    ];
    let w = [...W0];
    for (const [t, g] of grads.entries()) {
      const step = BigInt(t);
      const [encoded] = encoder.encode(part(g), step);
      if (encoded === undefined) throw new Error('no part encoded');
      expect(encoded.codec).toBe('topk');
      const sent = [...decodeTopk(encoded.bytes, 4, 'w')];
      // Adam's direction is about ±1 a step whatever the gradient's scale (-0.01 and 4 alike): what is sent stands for at most the steps so far.
      for (const x of sent) expect(Math.abs(x)).toBeLessThan(t + 1.01);
      await worker.pushEncoded({ workerId: 'worker-0', basedOnVersion: step, batchSize: 1, step, adamCorrected: true }, [encoded]);
      w = w.map((wi, i) => wi - LR * (sent[i] as number));
    }
    const { version } = await chief.pull('chief');
    expect(version).toBe(4n);
    const got = await values(chief);
    for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo(w[i] as number, 5);
  });

  it("under --wire auto applies a dense worker's plain gradient with Adam, exactly as a job without the correction, and a top-k worker's direction with plain SGD", async () => {
    const auto = { adamCorrection: true, workerIds: ['worker-0', 'worker-1'], wirePush: parseWireCodec('fp32', 'push'), wirePull: parseWireCodec('fp32', 'pull'), wireAuto: true };
    const g0 = [4, -0.01, 0.5, 0];
    // Worker 0's link picked fp16: a plain gradient, not Adam-corrected.
    const dense = new PushEncoder({ codec: parseWireCodec('fp16', 'push'), adam: ADAM });
    expect(dense.adamCorrected).toBe(false);
    const [plain] = dense.encode(part(g0), 0n);
    if (plain === undefined) throw new Error('no part encoded');
    // The same push to a job without the correction: the reference, bit for bit.
    const reference = await start({ ...auto, adamCorrection: false });
    await client(reference.address, 'worker-0').pushEncoded({ workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1, step: 0n }, [plain]);
    const want = await values(reference.chief);
    await server.stop();

    const { address, chief } = await start(auto);
    await client(address, 'worker-0').pushEncoded({ workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1, step: 0n }, [plain]);
    const afterDense = await values(chief);
    expect(afterDense).toEqual(want);
    // Adam's first step moves every non-zero coordinate by about the learning rate, whatever its gradient's size.
    expect(afterDense.map((x, i) => Math.round(((W0[i] as number) - x) / LR * 100) / 100)).toEqual(g0.map((x) => Math.sign(x)));

    // Worker 1's link picked top-k: the shard moves by the learning rate times what it sent.
    const topk = new PushEncoder({ codec: parseWireCodec('topk:0.5', 'push'), adam: ADAM });
    const [encoded] = topk.encode(part([0.002, 30, -0.5, 1]), 0n);
    if (encoded === undefined) throw new Error('no part encoded');
    const sent = [...decodeTopk(encoded.bytes, 4, 'w')];
    await client(address, 'worker-1').pushEncoded({ workerId: 'worker-1', basedOnVersion: 1n, batchSize: 1, step: 0n, adamCorrected: true }, [encoded]);
    const got = await values(chief);
    for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo((afterDense[i] as number) - LR * (sent[i] as number), 6);
  });

  it('in sync, sums Adam-corrected pushes apart from plain ones and applies each share in the same step: plain SGD and Adam', async () => {
    const { address, chief } = await start({ adamCorrection: true, mode: 'sync', syncReplicas: 2, workerIds: ['worker-0', 'worker-1'] });
    // A dense Adam-corrected push (a top-k sender's warm-up) from worker-0, a plain gradient from worker-1.
    const d0 = [1, -0.5, 0.25, 0];
    const g1 = [4, 0.02, -2, 1];
    const fp32 = (x: readonly number[]) => [{ name: 'w', shape: [2, 2], sliceStart: 0, length: 4, codec: 'fp32' as const, bytes: bytesOf(Float32Array.from(x)) }];
    await Promise.all([
      client(address, 'worker-0').pushEncoded({ workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1, step: 0n, adamCorrected: true }, fp32(d0)),
      client(address, 'worker-1').pushEncoded({ workerId: 'worker-1', basedOnVersion: 0n, batchSize: 3, step: 0n }, fp32(g1)),
    ]);
    const { version } = await chief.pull('chief');
    expect(version).toBe(1n);
    // Adam's first step on worker-1's share (3/4 of the batch) moves each coordinate by about lr·sign; plain SGD on worker-0's (1/4).
    const got = await values(chief);
    for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo((W0[i] as number) - LR * Math.sign(g1[i] as number) - LR * 0.25 * (d0[i] as number), 4);
  });

  it("restarts Adam from a checkpoint of the earlier form (m kept, v never fed), and keeps a real Adam checkpoint's state", async () => {
    const resume = async (v: number) => {
      const address = await server.start();
      const chief = client(address, 'chief');
      const t = (name: string, data: readonly number[]) => ({ name, shape: [2, 2], dtype: 'float32' as const, data: Float32Array.from(data), sliceStart: 0 });
      await chief.assign(
        { shardIndex: 0, optimizer: optimizerSettings('adam', LR), version: 500n, mode: 'async', syncReplicas: 1, staleness: 0, workerIds: ['worker-0'], wirePush: parseWireCodec('fp32', 'push'), wirePull: parseWireCodec('fp32', 'pull'), wireAuto: true, adamCorrection: true },
        [t('w', W0), t('w:m', [0.5, -0.5, 0.5, 0.5]), t('w:v', [v, v, v, v]), { name: OPTIMIZER_STATE_TENSOR, shape: [2], dtype: 'float32', data: Float32Array.of(0.9 ** 500, 0.999 ** 500), sliceStart: 0 }],
      );
      // A plain push (an auto worker's fp32) of small gradients.
      await client(address, 'worker-0').pushEncoded({ workerId: 'worker-0', basedOnVersion: 500n, batchSize: 1, step: 500n }, part([0.001, 0.001, -0.001, 0.001]).map((p) => ({ ...p, length: 4, codec: 'fp32' as const, bytes: bytesOf(p.data) })));
      const got = (await values(chief)).map((x, i) => ((W0[i] as number) - x) / LR);
      await server.stop();
      return got;
    };
    // The earlier form's m against an empty v would move by m/√v̂ ≈ 0.5 / 0.0015, hundreds of learning rates; Adam afresh moves by about lr·sign(g).
    const earlier = await resume(0);
    expect(earlier.map((x) => Math.round(x * 100) / 100)).toEqual([1, 1, -1, 1]);
    // A real Adam checkpoint (v fed) keeps its m: the second coordinate, whose m points the other way, moves against its gradient.
    const real = await resume(0.25);
    expect(real[1]).toBeLessThan(0);
  });

  it('refuses an Adam-corrected push in a job that did not agree to the correction, and applies nothing', async () => {
    const { address, chief } = await start({ adamCorrection: false });
    const encoder = new PushEncoder({ codec: parseWireCodec('topk:0.5', 'push'), adam: ADAM });
    const [encoded] = encoder.encode(part([1, 2, 3, 4]), 0n);
    if (encoded === undefined) throw new Error('no part encoded');
    const e = await client(address, 'worker-0')
      .pushEncoded({ workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1, step: 0n, adamCorrected: true }, [encoded])
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(e).toBeInstanceOf(RpcError);
    expect((e as RpcError).code).toBe('INVALID_ARGUMENT');
    expect((e as RpcError).message).toMatch(/Adam-corrected direction, but this job did not agree to the Adam correction/);
    const { version } = await chief.pull('chief');
    expect(version).toBe(0n);
    expect(await values(chief)).toEqual(W0);
  });

  it('needs adam and a top-k (or auto) push codec at assign', async () => {
    for (const config of [{ optimizer: { ...optimizerSettings('momentum', LR), momentum: 0.9 } }, { wirePush: parseWireCodec('int8', 'push') }]) {
      const e = await start({ adamCorrection: true, ...config }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(e).toBeInstanceOf(RpcError);
      expect((e as RpcError).code).toBe('INVALID_ARGUMENT');
      expect((e as RpcError).message).toMatch(/Adam correction needs the adam optimizer and a top-k \(or auto\) push codec/);
      await server.stop();
    }
  });
});
