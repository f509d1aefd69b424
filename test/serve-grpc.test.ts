/**
 * tamp serve's gRPC side (the Open Inference Protocol's
 * inference.GRPCInferenceService) over real gRPC on loopback. The conformance
 * client is built independently of the server's generated code:
 * @grpc/proto-loader reads proto/inference/grpc_predict_v2.proto at test time
 * (field names as the protocol spells them), and answers are compared with
 * the same server's REST answers. Then bad input, batching limits and
 * deadlines, metrics, @tamp/client/grpc and the `tamp serve` process.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { credentials, type GrpcObject, loadPackageDefinition, type ServiceClientConstructor, type ServiceError, status } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { rgbToRgba, renderScene, sceneSeed } from '@tamp/core';
import { encodePng } from '@tamp/core/node';
import { GrpcInferenceClient, GrpcStatus, RpcError } from '@tamp/client/grpc';
import { type RunningServer, startServe } from '@tamp/serve';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from './helpers/ports.js';
import { REPO, TAMP_BIN } from './helpers/tamp.js';

const DIGITS = join(REPO, 'demos/digits/public/models/compressed.tamp');
const DETECTOR = join(REPO, 'demos/objects/public/models/detector.tamp');
const PROTO = join(REPO, 'proto/inference/grpc_predict_v2.proto');
const log = () => {};

/** The service as any third-party client loads it: from the .proto, snake_case fields, int64 as numbers. */
const definition = loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const Service = ((loadPackageDefinition(definition).inference as GrpcObject).GRPCInferenceService as ServiceClientConstructor);

type Message = Record<string, unknown>;
interface Tensor {
  name: string;
  datatype: string;
  shape: number[];
  contents?: Record<string, unknown[]> | null;
  parameters?: Message;
}
interface InferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: Tensor[];
  raw_output_contents: Buffer[];
}

class ProtoClient {
  private readonly client: InstanceType<ServiceClientConstructor>;
  constructor(port: number) {
    this.client = new Service(`127.0.0.1:${port}`, credentials.createInsecure());
  }
  call<T = Message>(method: string, request: Message, deadlineMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const fn = this.client[method] as (r: Message, o: { deadline: Date }, cb: (e: ServiceError | null, r: T) => void) => void;
      fn.call(this.client, request, { deadline: new Date(Date.now() + deadlineMs) }, (e, r) => (e !== null ? reject(e) : resolve(r)));
    });
  }
  /** The status of a call expected to fail. */
  async refusal(method: string, request: Message, deadlineMs?: number): Promise<ServiceError> {
    const e = await this.call(method, request, deadlineMs).then(
      () => undefined,
      (err: ServiceError) => err,
    );
    expect(e, `${method} should have been refused`).toBeDefined();
    return e as ServiceError;
  }
  close(): void {
    this.client.close();
  }
}

/** Deterministic digit-shaped inputs in [0, 1). */
function samples(n: number, seed = 1): Float32Array {
  return Float32Array.from({ length: n * 784 }, (_, i) => (((i + seed * 7919) * 2654435761) % 1000) / 1000);
}

function raw(a: Float32Array | Uint8Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function floats(b: Buffer): number[] {
  return Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)));
}

function rawInfer(model: string, x: Float32Array, n: number, extra: Message = {}): Message {
  return { model_name: model, inputs: [{ name: 'input', datatype: 'FP32', shape: [n, 28, 28, 1] }], raw_input_contents: [raw(x)], ...extra };
}

async function restInfer(base: string, model: string, body: unknown): Promise<{ outputs: Array<{ name: string; datatype: string; shape: number[]; data: number[] }> }> {
  const r = await fetch(`${base}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(r.status).toBe(200);
  return (await r.json()) as { outputs: Array<{ name: string; datatype: string; shape: number[]; data: number[] }> };
}

describe('tamp serve over gRPC: conformance', () => {
  let server: RunningServer;
  let base: string;
  let grpc: ProtoClient;

  beforeAll(async () => {
    server = await startServe({ models: new Map([['digits', DIGITS], ['objects', DETECTOR]]), httpPort: 0, grpcPort: 0, metricsPort: 0, device: 'wasm', log });
    base = `http://127.0.0.1:${server.httpPort}`;
    grpc = new ProtoClient(server.grpcPort as number);
  });
  afterAll(async () => {
    grpc?.close();
    await server?.close();
  });

  it('answers ServerLive, ServerReady, ModelReady, ServerMetadata and ModelMetadata as REST does', async () => {
    expect(await grpc.call('ServerLive', {})).toEqual({ live: true });
    expect(await grpc.call('ServerReady', {})).toEqual({ ready: true });
    expect(await grpc.call('ModelReady', { name: 'digits' })).toEqual({ ready: true });
    expect(await grpc.call('ModelReady', { name: 'digits', version: '1' })).toEqual({ ready: true });
    expect(await grpc.call('ModelReady', { name: 'digits', version: '7' })).toEqual({ ready: false });
    expect(await grpc.call('ModelReady', { name: 'nope' })).toEqual({ ready: false });
    expect(await grpc.call('ServerMetadata', {})).toEqual(await (await fetch(`${base}/v2`)).json());
    for (const model of ['digits', 'objects']) {
      const rest: unknown = await (await fetch(`${base}/v2/models/${model}`)).json();
      expect(await grpc.call('ModelMetadata', { name: model })).toEqual(rest);
    }
    expect((await grpc.refusal('ModelMetadata', { name: 'nope' })).code).toBe(status.NOT_FOUND);
  });

  it('infers with raw_input_contents and with InferTensorContents, equal to the REST answers', async () => {
    const x = samples(3);
    const rest = await restInfer(base, 'digits', { inputs: [{ name: 'input', shape: [3, 28, 28, 1], datatype: 'FP32', data: Array.from(x) }] });
    const expected = rest.outputs[0]?.data as number[];

    const byRaw = await grpc.call<InferResponse>('ModelInfer', rawInfer('digits', x, 3, { id: 'req-7' }));
    expect(byRaw).toMatchObject({ model_name: 'digits', model_version: '1', id: 'req-7' });
    expect(byRaw.outputs).toEqual([{ name: 'output', datatype: 'FP32', shape: [3, 10], parameters: {}, contents: null }]);
    expect(byRaw.raw_output_contents).toHaveLength(1);
    expect(floats(byRaw.raw_output_contents[0] as Buffer)).toEqual(expected);

    const byContents = await grpc.call<InferResponse>('ModelInfer', { model_name: 'digits', model_version: '1', inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 784], contents: { fp32_contents: Array.from(x) } }] });
    expect(byContents.raw_output_contents).toEqual([]);
    expect(byContents.outputs[0]).toMatchObject({ name: 'output', datatype: 'FP32', shape: [3, 10] });
    expect(byContents.outputs[0]?.contents?.fp32_contents).toEqual(expected);

    // Other datatypes read from their own fields: UINT8 pixels as uint_contents and as raw bytes agree.
    const u8 = Uint8Array.from({ length: 784 }, (_, i) => (i * 37) % 2);
    const asUint = await grpc.call<InferResponse>('ModelInfer', { model_name: 'digits', inputs: [{ name: 'input', datatype: 'UINT8', shape: [1, 784], contents: { uint_contents: Array.from(u8) } }] });
    const asBytes = await grpc.call<InferResponse>('ModelInfer', { model_name: 'digits', inputs: [{ name: 'input', datatype: 'UINT8', shape: [1, 784] }], raw_input_contents: [raw(u8)] });
    expect(floats(asBytes.raw_output_contents[0] as Buffer)).toEqual(asUint.outputs[0]?.contents?.fp32_contents);
  });

  it('takes a PNG as a raw BYTES tensor and returns the named detection outputs as REST does', async () => {
    const scene = renderScene(sceneSeed(2026, 'serve-grpc', 0));
    const png = encodePng({ width: 96, height: 96, rgba: new Uint8Array(rgbToRgba(scene.pixels).buffer) });
    const rest = await restInfer(base, 'objects', { inputs: [{ name: 'input', shape: [1], datatype: 'BYTES', data: [Buffer.from(png).toString('base64')] }] });
    const prefixed = Buffer.alloc(4 + png.length);
    prefixed.writeUInt32LE(png.length, 0);
    prefixed.set(png, 4);
    const res = await grpc.call<InferResponse>('ModelInfer', { model_name: 'objects', inputs: [{ name: 'input', datatype: 'BYTES', shape: [1] }], raw_input_contents: [prefixed] });
    expect(res.outputs.map((o) => o.name)).toEqual(rest.outputs.map((o) => o.name));
    res.outputs.forEach((o, i) => {
      const r = rest.outputs[i] as { datatype: string; shape: number[]; data: number[] };
      expect(o).toMatchObject({ datatype: r.datatype, shape: r.shape });
      const b = res.raw_output_contents[i] as Buffer;
      const values = o.datatype === 'INT32' ? Array.from(new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length))) : floats(b);
      expect(values, o.name).toEqual(r.data);
    });
    expect(rest.outputs.find((o) => o.name === 'num_detections')?.data[0]).toBeGreaterThan(0);
    // Asked-for outputs only, as InferTensorContents when the input came that way.
    const one = await grpc.call<InferResponse>('ModelInfer', { model_name: 'objects', inputs: [{ name: 'input', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(png)] } }], outputs: [{ name: 'num_detections' }] });
    expect(one.outputs).toHaveLength(1);
    expect(one.outputs[0]?.contents?.int_contents).toEqual(rest.outputs.find((o) => o.name === 'num_detections')?.data);
  });

  it('refuses bad input with the right status and keeps serving', async () => {
    const input = (over: Message) => ({ model_name: 'digits', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 784], ...over }] });
    const cases: Array<[string, Message, status, RegExp]> = [
      ['wrong shape', input({ shape: [1, 27, 28, 1], contents: { fp32_contents: new Array(756).fill(0) } }), status.INVALID_ARGUMENT, /does not match the model's input/],
      ['element count', input({ contents: { fp32_contents: [1, 2, 3] } }), status.INVALID_ARGUMENT, /3 elements/],
      ['raw byte count', { ...input({}), raw_input_contents: [Buffer.alloc(3132)] }, status.INVALID_ARGUMENT, /3132 bytes/],
      ['raw entries per input', { ...input({}), raw_input_contents: [Buffer.alloc(3136), Buffer.alloc(3136)] }, status.INVALID_ARGUMENT, /2 entries for 1 inputs/],
      ['no data', input({}), status.INVALID_ARGUMENT, /neither contents nor/],
      ['NaN', input({ contents: { fp32_contents: [NaN, ...new Array<number>(783).fill(0)] } }), status.INVALID_ARGUMENT, /finite/],
      ['unknown datatype', input({ datatype: 'FLOAT', contents: { fp32_contents: new Array(784).fill(0) } }), status.INVALID_ARGUMENT, /datatype/],
      ['FP16 without raw contents', input({ datatype: 'FP16', contents: { fp32_contents: new Array(784).fill(0) } }), status.INVALID_ARGUMENT, /raw_input_contents/],
      ['wrong input name', input({ name: 'pixels', contents: { fp32_contents: new Array(784).fill(0) } }), status.INVALID_ARGUMENT, /"input"/],
      ['unknown output', { ...input({ contents: { fp32_contents: new Array(784).fill(0) } }), outputs: [{ name: 'logits' }] }, status.INVALID_ARGUMENT, /unknown output "logits"/],
      ['unknown model', { ...input({ contents: { fp32_contents: new Array(784).fill(0) } }), model_name: 'nope' }, status.NOT_FOUND, /not loaded/],
      ['unknown version', { ...input({ contents: { fp32_contents: new Array(784).fill(0) } }), model_version: '3' }, status.NOT_FOUND, /no version "3"/],
    ];
    for (const [what, request, code, message] of cases) {
      const e = await grpc.refusal('ModelInfer', request);
      expect(e.code, what).toBe(code);
      expect(e.details, what).toMatch(message);
    }
    const x = samples(1, 4);
    const rest = await restInfer(base, 'digits', { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: Array.from(x) }] });
    const ok = await grpc.call<InferResponse>('ModelInfer', rawInfer('digits', x, 1));
    expect(floats(ok.raw_output_contents[0] as Buffer)).toEqual(rest.outputs[0]?.data);
  });

  it('counts gRPC requests in the metrics as protocol="grpc"', async () => {
    const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    const count = (outcome: string) => Number(new RegExp(`tamp_serve_requests_total\\{model="digits",version="1",protocol="grpc",outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1]);
    expect(count('ok')).toBe(5);
    // Refusals after the model was found: every bad-input case above but the two NOT_FOUNDs.
    expect(count('error')).toBe(10);
  });

  it('@tamp/client/grpc: health, metadata, raw and contents inference, typed refusals', async () => {
    const client = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
    try {
      expect(await client.live()).toBe(true);
      expect(await client.ready()).toBe(true);
      expect(await client.modelReady('digits')).toBe(true);
      expect(await client.modelReady('digits', '2')).toBe(false);
      expect((await client.serverMetadata()).name).toBe('tamp');
      expect(await client.modelMetadata('digits')).toEqual(await (await fetch(`${base}/v2/models/digits`)).json());
      const x = samples(2, 8);
      const rest = await restInfer(base, 'digits', { inputs: [{ name: 'input', shape: [2, 784], datatype: 'FP32', data: Array.from(x) }] });
      const byRaw = await client.infer('digits', [{ name: 'input', shape: [2, 28, 28, 1], datatype: 'FP32', data: x }], { id: 'g1' });
      expect(byRaw).toMatchObject({ modelName: 'digits', modelVersion: '1', id: 'g1' });
      expect(Array.from(byRaw.output('output').data)).toEqual(rest.outputs[0]?.data);
      const byContents = await client.infer('digits', [{ name: 'input', shape: [2, 784], datatype: 'FP32', data: Array.from(x) }], { raw: false, version: '1' });
      expect(Array.from(byContents.output('output').data)).toEqual(rest.outputs[0]?.data);
      const err = await client.infer('nope', [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: x.subarray(0, 784) }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect((err as RpcError).grpcCode).toBe(GrpcStatus.NOT_FOUND);
      expect((err as RpcError).code).toBe('MODEL_NOT_LOADED');
      expect((err as RpcError).message).toMatch(/not loaded/);
    } finally {
      client.close();
    }
  });
});

describe('tamp serve over gRPC: batching, capacity and deadlines', () => {
  it('shares the batcher with REST: UNAVAILABLE at capacity, DEADLINE_EXCEEDED from the call deadline or parameters.timeout, RESOURCE_EXHAUSTED over the size limit', async () => {
    // A long queue delay: batches run only when full, so counts are fixed by construction.
    const server = await startServe({ models: new Map([['digits', DIGITS]]), httpPort: 0, grpcPort: 0, device: 'wasm', batching: { maxBatchSize: 4, maxQueueDelayMs: 60_000, maxQueueSize: 8 }, maxBodyBytes: 100_000, log });
    const grpc = new ProtoClient(server.grpcPort as number);
    const base = `http://127.0.0.1:${server.httpPort}`;
    try {
      const batcher = server.store.get('digits').batcher;
      const one = (seed: number) => grpc.call<InferResponse>('ModelInfer', rawInfer('digits', samples(1, seed), 1));
      // One waits over gRPC, one over REST: both in the same queue.
      const waiting = [one(1), restInfer(base, 'digits', { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: Array.from(samples(1, 2)) }] })];
      while (batcher.depth() < 2) await new Promise((r) => setTimeout(r, 10));
      // Seven more samples would pass the queue's eight: refused at once.
      const full = await grpc.refusal('ModelInfer', rawInfer('digits', samples(7), 7));
      expect(full.code).toBe(status.UNAVAILABLE);
      expect(full.details).toMatch(/capacity/);
      // The call's deadline reaches the batcher: the request expires in the queue, not only at the client.
      const late = await grpc.refusal('ModelInfer', rawInfer('digits', samples(1, 3), 1), 1_000);
      expect(late.code).toBe(status.DEADLINE_EXCEEDED);
      for (let i = 0; i < 500 && batcher.counts().expired < 1; i++) await new Promise((r) => setTimeout(r, 10));
      expect(batcher.counts().expired).toBe(1);
      // Triton's `timeout` parameter (µs), with no call deadline to speak of.
      const byParam = await grpc.refusal('ModelInfer', rawInfer('digits', samples(1, 4), 1, { parameters: { timeout: { int64_param: 50_000 } } }));
      expect(byParam.code).toBe(status.DEADLINE_EXCEEDED);
      expect(byParam.details).toMatch(/deadline passed/);
      expect(batcher.depth()).toBe(2);
      // Two more fill the batch: all four answered, in one batch.
      const all = await Promise.all([...waiting, one(5), one(6)]);
      expect(all).toHaveLength(4);
      expect(batcher.counts()).toMatchObject({ batches: 1, samples: 4, refused: 1, expired: 2 });
      // A message over --max-body-bytes (40 samples: 125 KB) is refused before it is read.
      expect((await grpc.refusal('ModelInfer', rawInfer('digits', samples(40), 40))).code).toBe(status.RESOURCE_EXHAUSTED);
      expect(batcher.counts().samples).toBe(4);
    } finally {
      grpc.close();
      await server.close();
    }
  });
});

describe('tamp serve over gRPC: the command', () => {
  it('serves gRPC on --grpc-port beside REST, and stops on SIGTERM', async () => {
    const [httpPort, grpcPort] = await freePorts(2);
    const child = spawn(process.execPath, [TAMP_BIN, 'serve', '--model', `digits=${DIGITS}`, '--http-port', String(httpPort), '--grpc-port', String(grpcPort), '--device', 'wasm', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const grpc = new ProtoClient(grpcPort as number);
    try {
      let ready = false;
      for (let i = 0; i < 600 && !ready; i++) {
        ready = await grpc.call<{ ready: boolean }>('ServerReady', {}, 1_000).then((r) => r.ready, () => false);
        if (!ready) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready, stderr).toBe(true);
      const res = await grpc.call<InferResponse>('ModelInfer', rawInfer('digits', samples(1), 1));
      expect(res.outputs[0]?.shape).toEqual([1, 10]);
      expect((await fetch(`http://127.0.0.1:${httpPort}/v2/health/ready`)).status).toBe(200);
    } finally {
      grpc.close();
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
    expect(JSON.parse(stdout.trim())).toMatchObject({ stoppedBy: 'SIGTERM', grpcPort });
  });
});
