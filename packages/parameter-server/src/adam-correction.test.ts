/**
 * Top-k's Adam correction at a real parameter server: a worker's real
 * PushEncoder divides each gradient by the root of Adam's second moment
 * before top-k, and the shard applies Adam's first moment alone to what
 * arrives; a job must have agreed to it at assign (adam with top-k, or
 * --wire auto, where dense pushes are divided too).
 */
import { describe, expect, it } from 'vitest';
import { type ShardConfig, decodeInt8, decodeTopk, optimizerSettings, parseWireCodec } from '@tamp/core';
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
    [{ name: 'w', shape: [4], dtype: 'float32', data: Float32Array.from(W0), sliceStart: 0 }],
  );
  return { address, chief };
}

describe("top-k's Adam correction", () => {
  it('moves each coordinate by Adam’s first moment of the preconditioned top-k values the worker sent', async () => {
    const { address, chief } = await start({ adamCorrection: true });
    const worker = client(address, 'worker-0');
    const encoder = new PushEncoder({ codec: parseWireCodec('topk:0.5', 'push'), adam: { beta2: 0.999, epsilon: 1e-7 } });
    const grads = [
      [4, -0.01, 0.5, 0],
      [4, -0.01, 0.5, 0.2],
      [-1, 0.02, 0.5, 0.2],
      [0, 0, 0, 0],
    ];
    let w = [...W0];
    let m = [0, 0, 0, 0];
    for (const [t, g] of grads.entries()) {
      const step = BigInt(t);
      const [encoded] = encoder.encode([{ name: 'w', shape: [4], dtype: 'float32', data: Float32Array.from(g), sliceStart: 0 }], step);
      if (encoded === undefined) throw new Error('no part encoded');
      expect(encoded.codec).toBe('topk');
      const sent = [...decodeTopk(encoded.bytes, 4, 'w')];
      // Preconditioned: every value sent is about ±(steps it stands for), whatever the gradient's scale (-0.01 and 4 alike).
      for (const x of sent) expect(Math.abs(x)).toBeLessThan(t + 1.01);
      await worker.pushEncoded({ workerId: 'worker-0', basedOnVersion: BigInt(t), batchSize: 1, step }, [encoded]);
      m = m.map((mi, i) => 0.9 * mi + 0.1 * (sent[i] as number));
      w = w.map((wi, i) => wi - (LR * (m[i] as number)) / (1 - 0.9 ** (t + 1)));
    }
    const { version, tensors } = await chief.pull('chief');
    expect(version).toBe(4n);
    const got = [...(tensors[0]?.data as Float32Array)];
    for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo(w[i] as number, 5);
  });

  it('under --wire auto divides dense pushes too, and the shard applies the first moment to each worker\'s, whatever its codec', async () => {
    const { address, chief } = await start({ adamCorrection: true, workerIds: ['worker-0', 'worker-1'], wirePush: parseWireCodec('fp32', 'push'), wirePull: parseWireCodec('fp32', 'pull'), wireAuto: true });
    const adam = { beta2: 0.999, epsilon: 1e-7 };
    // Two workers whose links picked different codecs: fp32 and int8.
    const encoders = [new PushEncoder({ codec: parseWireCodec('fp32', 'push'), adam }), new PushEncoder({ codec: parseWireCodec('int8', 'push'), adam })];
    const grads = [
      [4, -0.01, 0.5, 0],
      [0.002, 30, -0.5, 1],
    ];
    let w = [...W0];
    let m = [0, 0, 0, 0];
    for (const [t, g] of grads.entries()) {
      const id = `worker-${t}`;
      const [encoded] = (encoders[t] as PushEncoder).encode([{ name: 'w', shape: [4], dtype: 'float32', data: Float32Array.from(g), sliceStart: 0 }], 0n);
      if (encoded === undefined) throw new Error('no part encoded');
      expect(encoded.codec).toBe(t === 0 ? 'fp32' : 'int8');
      const sent = t === 0 ? [...new Float32Array(encoded.bytes.slice().buffer)] : [...decodeInt8(encoded.bytes, 4, 'w')];
      // Each worker's first step: Adam's first step divides every coordinate to about ±1 (0 stays 0), whatever its size.
      expect(sent.map((x) => Math.round(x * 100) / 100)).toEqual(g.map((x) => Math.sign(x)));
      await client(address, id).pushEncoded({ workerId: id, basedOnVersion: BigInt(t), batchSize: 1, step: 0n }, [encoded]);
      m = m.map((mi, i) => 0.9 * mi + 0.1 * (sent[i] as number));
      w = w.map((wi, i) => wi - (LR * (m[i] as number)) / (1 - 0.9 ** (t + 1)));
    }
    const got = [...((await chief.pull('chief')).tensors[0]?.data as Float32Array)];
    for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo(w[i] as number, 5);
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
