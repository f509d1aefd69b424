import { afterEach, describe, expect, it } from 'vitest';
import { type EncodedTensor, type WireCodec, type WireTensor, bytesOf, decodeTopk, decodeTopkSparse, placeVariables, encodeFp16, encodeInt4, encodeInt8, encodeTopk, int4Bytes, int8Bytes, optimizerSettings, parseWireCodec } from '@tamp/core';
import { CHIEF_SECRET_KEY, RpcError, WORKER_TOKEN_KEY, newSecret, slotToken } from '@tamp/rpc';
import { ShardClient } from './client.js';
import { ParameterClient } from './parameter-client.js';
import { type RunningParameterServer, startParameterServer } from './server.js';
import { PushEncoder } from './wire/push-encoder.js';

const JOB = 'wire-job';
/** The job's chief secret (authority.ts): the chief's calls carry it, workers' calls their slot tokens made from it. */
const SECRET = newSecret();
const N = 1000;
const SPEC = { workerId: 'worker-0', basedOnVersion: 0n, batchSize: 1 };
let ps: RunningParameterServer | undefined;
const clients: ShardClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await ps?.close();
  ps = undefined;
});

/** Deterministic values of a few magnitudes. */
function series(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233) * (1 + (i % 7)));
}

const INITIAL = series(N, 1);

async function start(push: string, pull: string): Promise<{ address: string; chief: ShardClient }> {
  ps = await startParameterServer({ jobId: JOB, index: 0, chiefSecret: SECRET });
  const address = `127.0.0.1:${ps.port}`;
  const chief = client(address, undefined, 'chief');
  await chief.assign(
    {
      shardIndex: 0,
      optimizer: optimizerSettings('sgd', 1),
      version: 0n,
      mode: 'async',
      syncReplicas: 1,
      staleness: 0,
      workerIds: ['worker-0', 'worker-1'],
      wirePush: parseWireCodec(push, 'push'),
      wirePull: parseWireCodec(pull, 'pull'),
    },
    [{ name: 'w', shape: [N], dtype: 'float32', data: INITIAL.slice(), sliceStart: 0 }],
  );
  return { address, chief };
}

/** A client calling as the chief or as one worker (worker-0 unless told). */
function client(address: string, pullCodec?: WireCodec, as = 'worker-0'): ShardClient {
  const metadata = as === 'chief' ? { [CHIEF_SECRET_KEY]: SECRET } : { [WORKER_TOKEN_KEY]: slotToken(SECRET, as, 1) };
  const c = new ShardClient(address, JOB, { rpc: { metadata }, ...(pullCodec === undefined ? {} : { pullCodec }) });
  clients.push(c);
  return c;
}

function encoded(codec: EncodedTensor['codec'], bytes: Uint8Array, length = N): EncodedTensor {
  return { name: 'w', shape: [N], sliceStart: 0, length, codec, bytes };
}

async function live(chief: ShardClient): Promise<{ version: bigint; w: Float32Array }> {
  const { version, tensors } = await chief.pull('chief');
  return { version, w: tensors[0]?.data as Float32Array };
}

async function refusal(p: Promise<unknown>): Promise<RpcError> {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e, 'expected a refusal').toBeInstanceOf(RpcError);
  return e as RpcError;
}

/** The block-quantized codecs: their encoder, levels each side of zero, size against fp32, bytes, and pulls to settle within 1e-5. */
const INT = {
  int8: { encode: (g: Float32Array) => encodeInt8(g), levels: 127, ratio: 0.27, bytes: (n: number) => int8Bytes(n), settle: 3 },
  int4: { encode: (g: Float32Array) => encodeInt4(g), levels: 7, ratio: 0.142, bytes: (n: number) => int4Bytes(n), settle: 7 },
} as const;
const INTS = ['int8', 'int4'] as const;

describe('wire codecs at the parameter server', () => {
  it('refuses a push in a codec the job did not agree to, and applies nothing', async () => {
    const { address, chief } = await start('int8', 'fp32');
    const worker = client(address);
    const e = await refusal(worker.pushEncoded({ ...SPEC, step: 0n }, [encoded('fp16', encodeFp16(series(N, 2)))]));
    expect(e.code).toBe('CODEC_UNSUPPORTED');
    expect(e.message).toMatch(/not one this job agreed to/);
    const after = await live(chief);
    expect(after.version).toBe(0n);
    expect([...after.w]).toEqual([...INITIAL]);
    expect((await chief.status()).pushesRefused).toBe(1n);
  });

  it('refuses malformed compressed chunks (position out of range, NaN scale, count mismatch, truncated) and applies nothing', async () => {
    const { address, chief } = await start('topk:0.1', 'fp32');
    const worker = client(address);
    const g = series(N + 50, 3);
    g[N + 20] = 1e6; // the largest value lies past the tensor's end
    const outside = encodeTopk(g, 0.1);
    const good = encodeTopk(series(N, 4), 0.1);
    const miscounted = good.slice();
    new DataView(miscounted.buffer).setUint32(0, new DataView(good.buffer).getUint32(0, true) + 1, true);
    const cases: Array<[string, EncodedTensor]> = [
      ['position out of range', encoded('topk', outside)],
      ['count mismatch', encoded('topk', miscounted)],
      ['truncated', encoded('topk', good.subarray(0, good.length - 3))],
      ['trailing bytes', encoded('topk', Uint8Array.from([...good, 7]))],
      ['NaN scale', encoded('topk', encodeTopk(Float32Array.from(series(N, 4), (x, i) => (i === 7 ? Number.NaN : x)), 0.1))],
    ];
    for (const [what, tensor] of cases) {
      const e = await refusal(worker.pushEncoded({ ...SPEC, step: 0n }, [tensor]));
      expect(e.code, what).toBe('CHUNK_INVALID');
    }
    const after = await live(chief);
    expect(after.version).toBe(0n);
    expect([...after.w]).toEqual([...INITIAL]);
    // The same good push is then taken once: the refusals left no (worker, step) behind.
    const r = await worker.pushEncoded({ ...SPEC, step: 0n }, [encoded('topk', good)]);
    expect(r.duplicate).toBe(false);
    expect((await live(chief)).version).toBe(1n);
  });

  it.each(INTS)('refuses an %s block with a NaN scale (a non-finite gradient) and applies nothing', async (kind) => {
    const { address, chief } = await start(kind, 'fp32');
    const g = series(N, 5);
    g[300] = Number.NaN;
    const e = await refusal(client(address).pushEncoded({ ...SPEC, step: 0n }, [encoded(kind, INT[kind].encode(g))]));
    expect(e.code).toBe('CHUNK_INVALID');
    expect(e.message).toMatch(/scale NaN/);
    expect((await live(chief)).version).toBe(0n);
  });

  it('refuses an int4 chunk holding -8 and applies nothing', async () => {
    const { address, chief } = await start('int4', 'fp32');
    const bytes = encodeInt4(series(N, 6));
    bytes[bytes.length - 1] = 0x88; // the last two elements: -8, outside symmetric int4's -7..7
    const e = await refusal(client(address).pushEncoded({ ...SPEC, step: 0n }, [encoded('int4', bytes)]));
    expect(e.code).toBe('CHUNK_INVALID');
    expect(e.message).toMatch(/is -8/);
    expect((await live(chief)).version).toBe(0n);
  });

  it.each(INTS)('%s pushes with error feedback: what the server applied plus what the worker owes is every gradient', async (kind) => {
    const { address, chief } = await start(kind, 'fp32');
    const worker = client(address);
    const encoder = new PushEncoder({ codec: { kind } });
    const total = new Float64Array(N);
    for (let step = 0; step < 8; step++) {
      const g = series(N, 10 + step);
      for (let i = 0; i < N; i++) total[i] = (total[i] as number) + (g[i] as number);
      const parts: WireTensor[] = [{ name: 'w', shape: [N], dtype: 'float32', data: g, sliceStart: 0 }];
      await worker.pushEncoded({ ...SPEC, step: BigInt(step) }, encoder.encode(parts, BigInt(step)));
    }
    const { version, w } = await live(chief);
    expect(version).toBe(8n);
    // One step's rounding at most is still owed (error feedback), not eight.
    const step = Math.max(...series(N, 10).map(Math.abs)) / INT[kind].levels;
    for (let i = 0; i < N; i++) expect(Math.abs((w[i] as number) - ((INITIAL[i] as number) - (total[i] as number)))).toBeLessThan(step * 2);
    // int8 on the wire: a quarter of fp32 and a scale per 256 values; int4 an eighth and a scale per 64.
    const s = await chief.status();
    expect(Number(s.pushBytes) / Number(s.pushesReceived) / (4 * N)).toBeLessThanOrEqual(INT[kind].ratio);
  });

  it.each(INTS)('%s pulls send changes, keep each worker exact over time, and resend whole values when a worker lost track', async (kind) => {
    const { address, chief } = await start('fp32', kind);
    const worker = client(address, { kind });
    const first = await worker.pull('worker-0');
    expect([...(first.tensors[0]?.data as Float32Array)]).toEqual([...INITIAL]); // the first pull is whole fp32 values
    const pusher = client(address, undefined, 'worker-1');
    for (let step = 0; step < 5; step++) {
      await pusher.push({ ...SPEC, workerId: 'worker-1', step: BigInt(step) }, [{ name: 'w', shape: [N], dtype: 'float32', data: series(N, 20 + step), sliceStart: 0 }]);
      await worker.pull('worker-0');
    }
    // No more pushes: each pull sends what rounding still owes (at most 1/254 of the change for int8, 1/14 for int4), so the worker converges on the live values.
    const truth = (await live(chief)).w;
    const settle = INT[kind].settle;
    let held: Float32Array = new Float32Array(0);
    for (let k = 0; k < settle; k++) held = (await worker.pull('worker-0')).tensors[0]?.data as Float32Array;
    for (let i = 0; i < N; i++) expect(Math.abs((held[i] as number) - (truth[i] as number))).toBeLessThan(1e-5);
    const s = await chief.status();
    // 1 fp32 pull + 5 + `settle` change pulls of 1,000 values (the chief's pulls are not counted).
    expect(s.pullsServed).toBe(BigInt(6 + settle));
    expect(Number(s.pullBytes)).toBe(4 * N + (5 + settle) * INT[kind].bytes(N));
    // Another client under the same id (a restarted worker) starts from whole values; the first one's base no longer matches, so it gets whole values too.
    const restarted = client(address, { kind });
    expect([...((await restarted.pull('worker-0')).tensors[0]?.data as Float32Array)]).toEqual([...truth]);
    expect([...((await worker.pull('worker-0')).tensors[0]?.data as Float32Array)]).toEqual([...truth]);
  });

  it('fp16 pulls are within half precision; a pull codec the job did not agree to is refused', async () => {
    const { address } = await start('fp32', 'fp16');
    const got = (await client(address, { kind: 'fp16' }).pull('worker-0')).tensors[0]?.data as Float32Array;
    for (let i = 0; i < N; i++) expect(Math.abs((got[i] as number) - (INITIAL[i] as number))).toBeLessThanOrEqual(Math.abs(INITIAL[i] as number) * 2 ** -11);
    const e = await refusal(client(address, { kind: 'int8' }).pull('worker-0'));
    expect(e.code).toBe('CODEC_UNSUPPORTED');
    expect(e.message).toMatch(/it pulls fp16/);
  });

  it('fp32 pushes stay raw: bytesOf the gradient, counted as 4 bytes a value', async () => {
    const { address, chief } = await start('fp32', 'fp32');
    await client(address).pushEncoded({ ...SPEC, step: 0n }, [encoded('fp32', bytesOf(series(N, 6)))]);
    const s = await chief.status();
    expect(s.pushBytes).toBe(BigInt(4 * N));
  });
});

describe('PushEncoder', () => {
  // A kernel (rank 2): top-k sends biases whole (the last test).
  const part = (data: Float32Array): WireTensor[] => [{ name: 'w', shape: [1, data.length], dtype: 'float32', data, sliceStart: 0 }];

  it('top-k starts dense and reaches its fraction after the warm-up; without error feedback it forgets what it did not send', () => {
    const g = series(N, 7);
    const warm = new PushEncoder({ codec: { kind: 'topk', fraction: 0.01 }, warmupSteps: 10 });
    const k = (e: EncodedTensor[]) => new DataView(e[0]?.bytes.buffer as ArrayBuffer, e[0]?.bytes.byteOffset).getUint32(0, true);
    // Dense top-k takes 2 bytes a value (a half; a whole tensor sends no positions) and 8 of header, half of fp32's 4.
    const dense = warm.encode(part(g), 0n)[0];
    expect(dense?.codec).toBe('topk');
    expect(dense?.bytes.length).toBe(8 + 2 * N);
    expect(decodeTopk(dense?.bytes as Uint8Array, N, 'w')).toEqual(decodeTopk(encodeTopk(g, 1), N, 'w'));
    expect(warm.encode(part(g), 3n)[0]?.codec).toBe('topk');
    // A tensor of 4 elements or fewer is smaller as fp32 (16 bytes against 8 + 8): the same decoded values go that way; 5 go as top-k (18 against 20).
    const whole = (values: number[]) => new PushEncoder({ codec: { kind: 'topk', fraction: 1 } }).encode(part(Float32Array.from(values)), 0n)[0];
    const tiny = whole([1, 2, 3, 4]);
    expect(tiny?.codec).toBe('fp32');
    expect([...new Float32Array((tiny?.bytes as Uint8Array).slice().buffer)]).toEqual([1, 2, 3, 4]);
    expect(whole([1, 2, 3, 4, 5])?.bytes.length).toBe(18);
    expect(k(warm.encode(part(g), 10n))).toBe(10);
    const forgetful = new PushEncoder({ codec: { kind: 'topk', fraction: 0.01 }, errorFeedback: false });
    const keeping = new PushEncoder({ codec: { kind: 'topk', fraction: 0.01 } });
    const small = Float32Array.from({ length: N }, (_, i) => (i < 10 ? 100 : 30)); // the same 10 win every step without feedback
    for (let s = 0n; s < 3n; s++) {
      forgetful.encode(part(small), s);
      keeping.encode(part(small), s);
    }
    const bytesAt = (e: PushEncoder) => e.encode(part(small), 3n)[0]?.bytes as Uint8Array;
    // With feedback the 990 unsent values have grown to 4 × 30 and pass the 100s (sent, and so reset, at every step); without, the same 10 go again.
    const first = (b: Uint8Array) => decodeTopkSparse(b, N, 'w').values[0];
    expect(first(bytesAt(forgetful))).toBe(100);
    expect(first(bytesAt(keeping))).toBe(120);
  });

  it('top-k sends biases whole (half values, no positions) and kernels at its fraction; --wire-sparse-biases sparsifies both', () => {
    const kernel = series(N, 8);
    const bias = series(50, 9);
    const parts: WireTensor[] = [
      { name: 'fc/kernel', shape: [20, 50], dtype: 'float32', data: kernel, sliceStart: 0 },
      { name: 'fc/bias', shape: [50], dtype: 'float32', data: bias, sliceStart: 0 },
    ];
    const counts = (e: EncodedTensor[]) => e.map((t) => (t.codec === 'topk' ? decodeTopkSparse(t.bytes, t.length, t.name).values.length : -1));
    const usual = new PushEncoder({ codec: { kind: 'topk', fraction: 0.01 } });
    for (let step = 0n; step < 3n; step++) {
      const e = usual.encode(parts, step);
      expect(counts(e)).toEqual([10, 50]);
      // What goes whole goes as half values: the decoded bias is the gradient to half precision, nothing owed but rounding.
      expect(e[1]?.bytes.length).toBe(8 + 2 * 50);
      const got = decodeTopk(e[1]?.bytes as Uint8Array, 50, 'fc/bias');
      for (let i = 0; i < 50; i++) expect(Math.abs((got[i] as number) - (bias[i] as number))).toBeLessThanOrEqual(2 ** -10 * Math.abs(bias[i] as number) + 1e-9);
    }
    const sparse = new PushEncoder({ codec: { kind: 'topk', fraction: 0.01 }, sparseBiases: true });
    expect(counts(sparse.encode(parts, 0n))).toEqual([10, 1]);
  });
});

describe('ParameterClient with wire settings', () => {
  it('clips a top-k gradient to --wire-clip before it is accumulated (DGC local clipping)', async () => {
    const { address, chief } = await start('topk:1', 'fp32');
    const placement = placeVariables([{ name: 'w', shape: [N] }], 1);
    const params = new ParameterClient([address], placement, JOB, { rpc: { metadata: { [WORKER_TOKEN_KEY]: slotToken(SECRET, 'worker-0', 1) } }, wire: { push: { kind: 'topk', fraction: 1 }, pull: { kind: 'fp32' }, clipNorm: 1 } });
    try {
      const g = series(N, 8); // norm far above 1
      await params.pushAll({ workerId: 'worker-0', step: 0n, batchSize: 1, basedOnVersions: [0n] }, new Map([['w', g]]));
      const { w } = await live(chief);
      let sq = 0;
      for (let i = 0; i < N; i++) sq += ((INITIAL[i] as number) - (w[i] as number)) ** 2;
      expect(Math.sqrt(sq)).toBeCloseTo(1, 4); // SGD at lr 1: the step is the clipped gradient
      expect([...g].some((x) => Math.abs(x) > 1)).toBe(true); // the caller's gradient is left alone
    } finally {
      params.close();
    }
  });
});
