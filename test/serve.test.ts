/**
 * tamp serve over real HTTP on loopback: the Open Inference Protocol v2 (JSON
 * and the binary tensor data extension), TF Serving's :predict, dynamic
 * batching and its limits, every kind of bad input, reloads under load, and
 * the `tamp serve` process itself. Clients are plain `fetch`, independent of
 * the server's code. Models: the demos' compressed LeNet-5 and int8 detector.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rgbToRgba, renderScene, sceneSeed } from '@tamp/core';
import { encodePng } from '@tamp/core/node';
import { InferenceClient, InferenceError } from '@tamp/client';
import { type RunningServer, startServe } from '@tamp/serve';
import { detect, type InferenceModel } from '@tamp/webgpu';
import { loadModel } from '@tamp/webgpu/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from './helpers/ports.js';
import { REPO, TAMP_BIN } from './helpers/tamp.js';
import { spawn } from 'node:child_process';

const DIGITS = join(REPO, 'demos/digits/public/models/compressed.tamp');
const DETECTOR = join(REPO, 'demos/objects/public/models/detector.tamp');
const log = () => {};

/** Deterministic digit-shaped inputs in [0, 1). */
function samples(n: number, seed = 1): Float32Array {
  return Float32Array.from({ length: n * 784 }, (_, i) => (((i + seed * 7919) * 2654435761) % 1000) / 1000);
}

interface V2Output {
  name: string;
  shape: number[];
  datatype: string;
  data?: number[];
  parameters?: { binary_data_size?: number };
}

async function postJson(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

function v2Input(x: Float32Array, n: number) {
  return { inputs: [{ name: 'input', shape: [n, 28, 28, 1], datatype: 'FP32', data: Array.from(x) }] };
}

/** A v2 request with binary inputs: the JSON header, then the raw bytes. */
function binaryBody(json: unknown, ...raw: Uint8Array[]): { body: Uint8Array<ArrayBuffer>; headers: Record<string, string> } {
  const head = Buffer.from(JSON.stringify(json));
  return { body: Uint8Array.from(Buffer.concat([head, ...raw])), headers: { 'inference-header-content-length': String(head.length), 'content-type': 'application/octet-stream' } };
}

function bytes(a: Float32Array | Uint16Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs((actual[i] as number) - (expected[i] as number))).toBeLessThanOrEqual(tol);
}

describe('tamp serve: protocols', () => {
  let server: RunningServer;
  let base: string;
  let reference: InferenceModel;
  let detector: InferenceModel;

  beforeAll(async () => {
    server = await startServe({ models: new Map([['digits', DIGITS], ['objects', DETECTOR]]), httpPort: 0, metricsPort: 0, device: 'wasm', log });
    base = `http://127.0.0.1:${server.httpPort}`;
    reference = await loadModel(DIGITS, { device: 'wasm' });
    detector = await loadModel(DETECTOR, { device: 'wasm' });
  });
  afterAll(async () => {
    await server?.close();
    reference?.dispose();
    detector?.dispose();
  });

  it('answers health, server and model metadata, and readiness', async () => {
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(200);
    const meta = (await (await fetch(`${base}/v2`)).json()) as { name: string; extensions: string[] };
    expect(meta.name).toBe('tamp');
    expect(meta.extensions).toContain('binary_tensor_data');
    const model = (await (await fetch(`${base}/v2/models/digits`)).json()) as { name: string; versions: string[]; inputs: V2Output[]; outputs: V2Output[] };
    expect(model).toMatchObject({ name: 'digits', versions: ['1'], inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 28, 28, 1] }], outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 10] }] });
    expect((await fetch(`${base}/v2/models/digits/ready`)).status).toBe(200);
    expect((await fetch(`${base}/v2/models/digits/versions/1/ready`)).status).toBe(200);
    expect((await fetch(`${base}/v2/models/digits/versions/7/ready`)).status).toBe(400);
    expect((await fetch(`${base}/v2/models/nope/ready`)).status).toBe(400);
  });

  it('infers over JSON, echoes the id, and agrees with the model run directly', async () => {
    const x = samples(3);
    const { status, json } = await postJson(`${base}/v2/models/digits/infer`, { id: 'req-42', ...v2Input(x, 3) });
    expect(status).toBe(200);
    expect(json).toMatchObject({ model_name: 'digits', model_version: '1', id: 'req-42' });
    const out = (json.outputs as V2Output[])[0] as V2Output;
    expect(out).toMatchObject({ name: 'output', datatype: 'FP32', shape: [3, 10] });
    expectClose(out.data as number[], (await reference.predict(x)).data);
  });

  it('round trips the binary tensor data extension (FP32, FP16 and UINT8 inputs; binary outputs)', async () => {
    const x = samples(2, 5);
    const direct = (await reference.predict(x)).data;
    const req = binaryBody(
      { inputs: [{ name: 'input', shape: [2, 784], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }], outputs: [{ name: 'output', parameters: { binary_data: true } }] },
      bytes(x),
    );
    const r = await fetch(`${base}/v2/models/digits/infer`, { method: 'POST', headers: req.headers, body: req.body });
    expect(r.status).toBe(200);
    const body = Buffer.from(await r.arrayBuffer());
    const headerLength = Number(r.headers.get('inference-header-content-length'));
    const head = JSON.parse(body.subarray(0, headerLength).toString()) as { outputs: V2Output[] };
    expect(head.outputs[0]).toMatchObject({ name: 'output', shape: [2, 10], parameters: { binary_data_size: 80 } });
    const raw = body.subarray(headerLength);
    expectClose(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length)), direct);

    // UINT8 pixels (0..255 as numbers the model sees unscaled) and FP16 give the same answers as FP32 of the same values.
    const u8 = Uint8Array.from({ length: 784 }, (_, i) => (i * 37) % 2);
    const u8Req = binaryBody({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'UINT8', parameters: { binary_data_size: 784 } }] }, u8);
    const u8Res = (await (await fetch(`${base}/v2/models/digits/infer`, { method: 'POST', headers: u8Req.headers, body: u8Req.body })).json()) as { outputs: V2Output[] };
    expectClose(u8Res.outputs[0]?.data as number[], (await reference.predict(Float32Array.from(u8))).data);
    const f16 = new Uint16Array(784).map((_, i) => ((i * 37) % 2 === 1 ? 0x3c00 : 0)); // 1.0 and 0.0 in half precision
    const f16Req = binaryBody({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP16', parameters: { binary_data_size: 1568 } }] }, bytes(f16));
    const f16Res = (await (await fetch(`${base}/v2/models/digits/infer`, { method: 'POST', headers: f16Req.headers, body: f16Req.body })).json()) as { outputs: V2Output[] };
    expectClose(f16Res.outputs[0]?.data as number[], u8Res.outputs[0]?.data as number[]);
  });

  it("answers TF Serving's status and :predict with instances and inputs", async () => {
    const status = (await (await fetch(`${base}/v1/models/digits`)).json()) as { model_version_status: Array<{ version: string; state: string }> };
    expect(status.model_version_status).toEqual([{ version: '1', state: 'AVAILABLE', status: { error_code: 'OK', error_message: '' } }]);
    const x = samples(2, 9);
    const direct = (await reference.predict(x)).data;
    const rows = [0, 1].map((s) => Array.from({ length: 28 }, (_, r) => Array.from({ length: 28 }, (_, c) => [x[s * 784 + r * 28 + c] as number])));
    const byRows = await postJson(`${base}/v1/models/digits:predict`, { instances: rows });
    expect(byRows.status).toBe(200);
    expectClose((byRows.json.predictions as number[][]).flat(), direct);
    const byCols = await postJson(`${base}/v1/models/digits/versions/1:predict`, { inputs: { input: rows } });
    expect(byCols.status).toBe(200);
    expectClose((byCols.json.outputs as number[][]).flat(), direct);
  });

  it('takes PNG scenes as BYTES and returns the decoded boxes beside the grid', async () => {
    const scene = renderScene(sceneSeed(2026, 'serve', 0));
    const png = encodePng({ width: 96, height: 96, rgba: new Uint8Array(rgbToRgba(scene.pixels).buffer) });
    const { status, json } = await postJson(`${base}/v2/models/objects/infer`, { inputs: [{ name: 'input', shape: [1], datatype: 'BYTES', data: [Buffer.from(png).toString('base64')] }] });
    expect(status, JSON.stringify(json)).toBe(200);
    const outs = Object.fromEntries((json.outputs as V2Output[]).map((o) => [o.name, o]));
    expect(Object.keys(outs).sort()).toEqual(['detection_boxes', 'detection_classes', 'detection_scores', 'num_detections', 'output']);
    const pixels = Float32Array.from(scene.pixels, (v) => v / 255);
    const [expected = []] = await detect(detector, pixels, { scoreThreshold: 0.3 });
    expect(outs.num_detections?.data).toEqual([expected.length]);
    expect(expected.length).toBeGreaterThan(0);
    expectClose(outs.detection_scores?.data?.slice(0, expected.length) as number[], expected.map((d) => d.score), 1e-4);
    expectClose(outs.detection_boxes?.data?.slice(0, 4 * expected.length) as number[], expected.flatMap((d) => [d.x1, d.y1, d.x2, d.y2]), 1e-3);
    expect(outs.detection_classes?.data?.slice(0, expected.length)).toEqual(expected.map((d) => d.label));
  });

  it('refuses bad input with the protocol error and keeps serving', async () => {
    const infer = (body: unknown) => postJson(`${base}/v2/models/digits/infer`, body);
    const cases: Array<[string, Promise<{ status: number; json: Record<string, unknown> }>, number, RegExp]> = [
      ['wrong shape', infer({ inputs: [{ name: 'input', shape: [1, 27, 28, 1], datatype: 'FP32', data: new Array(756).fill(0) }] }), 400, /does not match the model's input/],
      ['unknown datatype', infer({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FLOAT', data: [] }] }), 400, /datatype/],
      ['element count', infer({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: [1, 2, 3] }] }), 400, /3 elements/],
      ['NaN', infer({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: ['NaN', ...new Array<number>(783).fill(0)] }] }), 400, /finite/],
      ['wrong input name', infer({ inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'FP32', data: new Array(784).fill(0) }] }), 400, /"input"/],
      ['not JSON', fetch(`${base}/v2/models/digits/infer`, { method: 'POST', body: '{"inputs": [' }).then(async (r) => ({ status: r.status, json: (await r.json()) as Record<string, unknown> })), 400, /not valid JSON/],
      ['unknown model', infer(v2Input(samples(1), 1)).then(() => postJson(`${base}/v2/models/nope/infer`, v2Input(samples(1), 1))), 404, /not loaded/],
      ['unknown version', postJson(`${base}/v2/models/digits/versions/3/infer`, v2Input(samples(1), 1)), 404, /no version "3"/],
      ['undecodable image', postJson(`${base}/v2/models/objects/infer`, { inputs: [{ name: 'input', shape: [1], datatype: 'BYTES', data: [Buffer.from('not an image').toString('base64')] }] }), 400, /not a PNG or JPEG/],
      ['unknown output', infer({ ...v2Input(samples(1), 1), outputs: [{ name: 'logits' }] }), 400, /unknown output "logits"/],
    ];
    for (const [what, response, status, message] of cases) {
      const r = await response;
      expect(r.status, what).toBe(status);
      expect(r.json.error, what).toMatch(message);
    }
    // A body that lies about its binary sizes: more than it holds, then less.
    const x = samples(1);
    for (const size of [x.byteLength + 4, x.byteLength - 4]) {
      const req = binaryBody({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', parameters: { binary_data_size: size } }] }, bytes(x));
      const r = await fetch(`${base}/v2/models/digits/infer`, { method: 'POST', headers: req.headers, body: req.body });
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: string }).error).toMatch(/binary/);
    }
    const nan = binaryBody({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', parameters: { binary_data_size: 3136 } }] }, bytes(new Float32Array(784).fill(NaN)));
    expect((await fetch(`${base}/v2/models/digits/infer`, { method: 'POST', headers: nan.headers, body: nan.body })).status).toBe(400);
    // Still serving, and the answers are still right.
    const ok = await infer(v2Input(x, 1));
    expect(ok.status).toBe(200);
    expectClose((ok.json.outputs as V2Output[])[0]?.data as number[], (await reference.predict(x)).data);
  });

  it('@tamp/client infers in binary and JSON alike, and reports refusals with their status', async () => {
    const client = new InferenceClient(base);
    expect(await client.live()).toBe(true);
    expect(await client.modelReady('digits')).toBe(true);
    expect((await client.modelMetadata('objects')).outputs.map((o) => o.name)).toContain('detection_boxes');
    const x = samples(4, 3);
    const direct = (await reference.predict(x)).data;
    const bin = await client.infer('digits', [{ name: 'input', shape: [4, 28, 28, 1], datatype: 'FP32', data: x }], { id: 'c1' });
    expect(bin.id).toBe('c1');
    expectClose(bin.output('output').data, direct);
    const json = await client.infer('digits', [{ name: 'input', shape: [4, 784], datatype: 'FP32', data: Array.from(x) }], { binary: false, version: '1' });
    expectClose(json.output('output').data, direct);
    const err = await client.infer('nope', [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: x.subarray(0, 784) }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InferenceError);
    expect((err as InferenceError).status).toBe(404);
    expect((err as InferenceError).message).toMatch(/not loaded/);
  });

  it('counts requests in Prometheus metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    const ok = /tamp_serve_requests_total\{model="digits",version="1",protocol="v2",outcome="ok"\} (\d+)/.exec(text);
    expect(Number(ok?.[1])).toBeGreaterThanOrEqual(5);
    expect(text).toMatch(/tamp_serve_request_duration_seconds_bucket\{le="0.001",model="digits",version="1"\}/);
    expect(text).toMatch(/process_resident_memory_bytes \d+/);
    expect((await fetch(`http://127.0.0.1:${server.metricsPort}/healthz`)).status).toBe(200);
  });
});

describe('tamp serve: dynamic batching and limits', () => {
  it('fills batches, refuses at capacity at once, honours deadlines, limits bodies', async () => {
    // A long queue delay: batches form only when full, so their count is fixed by construction.
    const server = await startServe({ models: new Map([['digits', DIGITS]]), httpPort: 0, device: 'wasm', batching: { maxBatchSize: 4, maxQueueDelayMs: 60_000, maxQueueSize: 8 }, maxBodyBytes: 100_000, log });
    const base = `http://127.0.0.1:${server.httpPort}`;
    try {
      const one = (seed: number, extra: Record<string, unknown> = {}) => postJson(`${base}/v2/models/digits/infer`, { ...v2Input(samples(1, seed), 1), ...extra });
      const batcher = server.store.get('digits').batcher;
      // Eight single-sample requests: exactly two batches of four.
      const eight = await Promise.all(Array.from({ length: 8 }, (_, i) => one(i)));
      expect(eight.map((r) => r.status)).toEqual(new Array(8).fill(200));
      expect(batcher.counts()).toMatchObject({ batches: 2, samples: 8 });
      // Two wait (no full batch yet); a request of 7 samples would pass the queue's 8: refused at once with 503.
      const waiting = [one(11), one(12)];
      while (batcher.depth() < 2) await new Promise((r) => setTimeout(r, 10));
      const seven = samples(7);
      const overReq = binaryBody({ inputs: [{ name: 'input', shape: [7, 784], datatype: 'FP32', parameters: { binary_data_size: seven.byteLength } }] }, bytes(seven));
      const over = await fetch(`${base}/v2/models/digits/infer`, { method: 'POST', headers: overReq.headers, body: overReq.body });
      expect(over.status).toBe(503);
      expect(((await over.json()) as { error: string }).error).toMatch(/capacity/);
      // A request with a 50 ms deadline (three waiting: still no full batch) is answered 504; the others keep waiting.
      const late = await one(14, { parameters: { timeout: 50_000 } });
      expect(late.status).toBe(504);
      expect(batcher.depth()).toBe(2);
      // Two more fill the batch: all four answered.
      const all = await Promise.all([...waiting, one(15), one(16)]);
      expect(all.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(batcher.counts()).toMatchObject({ batches: 3, samples: 12, refused: 1, expired: 1 });
      // A body over --max-body-bytes: 413.
      const tooBig = await postJson(`${base}/v2/models/digits/infer`, v2Input(samples(8), 8)); // about 125 KB of JSON
      expect(tooBig.status).toBe(413);
    } finally {
      await server.close();
    }
  });
});

describe('tamp serve: model repository', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tamp-repo-'));
    mkdirSync(join(dir, 'digits', '1'), { recursive: true });
    copyFileSync(DIGITS, join(dir, 'digits', '1', 'model.tamp'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a new version before unloading the old, with no failed request during the reload', async () => {
    const server = await startServe({ repository: dir, httpPort: 0, device: 'wasm', pollMs: 50, log });
    const base = `http://127.0.0.1:${server.httpPort}`;
    try {
      expect(server.store.versions('digits')).toEqual(['1']);
      let stop = false;
      const statuses: number[] = [];
      const loop = (async () => {
        while (!stop && statuses.length < 5_000) statuses.push((await postJson(`${base}/v2/models/digits/infer`, v2Input(samples(1), 1))).status);
      })();
      const waitFor = async (cond: () => boolean) => {
        for (let i = 0; i < 2_000 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
        expect(cond()).toBe(true);
      };
      // Version 2 appears: loaded beside 1; then 1 is removed: unloaded only after 2 serves.
      mkdirSync(join(dir, 'digits', '2'));
      copyFileSync(DIGITS, join(dir, 'digits', '2', 'model.tamp'));
      await waitFor(() => server.store.versions('digits').join() === '1,2');
      rmSync(join(dir, 'digits', '1'), { recursive: true });
      await waitFor(() => server.store.versions('digits').join() === '2');
      const during = statuses.length;
      await waitFor(() => statuses.length > during + 3);
      stop = true;
      await loop;
      expect(statuses.length).toBeGreaterThan(3);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);

      // Triton's repository extension: index, unload, load.
      const index = await postJson(`${base}/v2/repository/index`, {});
      expect(index.json).toEqual([{ name: 'digits', version: '2', state: 'READY', reason: '' }]);
      expect((await fetch(`${base}/v2/repository/models/digits/unload`, { method: 'POST' })).status).toBe(200);
      expect((await fetch(`${base}/v2/models/digits/ready`)).status).toBe(400);
      expect((await fetch(`${base}/v2/health/ready`)).status).toBe(400);
      expect((await postJson(`${base}/v2/models/digits/infer`, v2Input(samples(1), 1))).status).toBe(404);
      expect((await fetch(`${base}/v2/repository/models/digits/load`, { method: 'POST' })).status).toBe(200);
      expect((await postJson(`${base}/v2/models/digits/infer`, v2Input(samples(1), 1))).status).toBe(200);
      expect((await fetch(`${base}/v2/repository/models/ghost/load`, { method: 'POST' })).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe('tamp serve: the command', () => {
  it('starts from the bin, answers health and an inference, and stops on SIGTERM', async () => {
    const [port] = await freePorts(1);
    const child = spawn(process.execPath, [TAMP_BIN, 'serve', '--model', `digits=${DIGITS}`, '--http-port', String(port), '--grpc-port', '0', '--device', 'wasm', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      const base = `http://127.0.0.1:${port}`;
      let live = false;
      for (let i = 0; i < 600 && !live; i++) {
        live = await fetch(`${base}/v2/health/ready`).then((r) => r.status === 200, () => false);
        if (!live) await new Promise((r) => setTimeout(r, 100));
      }
      expect(live, stderr).toBe(true);
      const r = await postJson(`${base}/v2/models/digits/infer`, v2Input(samples(1), 1));
      expect(r.status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
    expect(JSON.parse(stdout.trim())).toMatchObject({ stoppedBy: 'SIGTERM', models: [{ name: 'digits', version: '1' }] });
  });
});
