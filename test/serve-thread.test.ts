/**
 * tamp serve's inference thread (ARCHITECTURE.md, `@tamp/serve`): WASM models
 * loaded and run on a worker thread give the answers the model gives run
 * directly, in batches as on the event loop's thread; a model that cannot load
 * fails there with the error it fails with here; reloads under a request loop
 * fail no request; and the `tamp serve` process with batching (the thread on
 * by default) stops cleanly on SIGTERM; a runner on another thread is sent a
 * second batch only when it is full. Counts and states only, never times.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TampError } from '@tamp/core';
import { Batcher, ModelStore, startServe } from '@tamp/serve';
import { loadModel } from '@tamp/webgpu/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from './helpers/ports.js';
import { REPO, TAMP_BIN } from './helpers/tamp.js';

const DIGITS = join(REPO, 'demos/digits/public/models/compressed.tamp');
const log = () => {};

function samples(n: number, seed = 1): Float32Array {
  return Float32Array.from({ length: n * 784 }, (_, i) => (((i + seed * 7919) * 2654435761) % 1000) / 1000);
}

async function infer(base: string, x: Float32Array, n: number): Promise<{ status: number; data: number[] }> {
  const r = await fetch(`${base}/v2/models/digits/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'input', shape: [n, 784], datatype: 'FP32', data: Array.from(x) }] }) });
  const json = (await r.json()) as { outputs?: Array<{ data: number[] }> };
  return { status: r.status, data: json.outputs?.[0]?.data ?? [] };
}

describe('tamp serve: the inference thread', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tamp-thread-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers in batches what the model answers run directly, with the thread on and off alike', async () => {
    const reference = await loadModel(DIGITS, { device: 'wasm' });
    const expected = await Promise.all([1, 2, 3, 4, 5, 6].map(async (seed) => Array.from((await reference.predict(samples(1, seed))).data)));
    reference.dispose();
    for (const inferenceThread of [true, false]) {
      // A long queue delay: the six requests run as exactly two full batches of three.
      const server = await startServe({ models: new Map([['digits', DIGITS]]), httpPort: 0, device: 'wasm', batching: { maxBatchSize: 3, maxQueueDelayMs: 60_000, maxQueueSize: 64 }, inferenceThread, log });
      try {
        const base = `http://127.0.0.1:${server.httpPort}`;
        const answers = await Promise.all([1, 2, 3, 4, 5, 6].map((seed) => infer(base, samples(1, seed), 1)));
        expect(answers.map((a) => a.status)).toEqual(new Array(6).fill(200));
        answers.forEach((a, i) => {
          const want = expected[i] as number[];
          expect(a.data).toHaveLength(want.length);
          a.data.forEach((v, j) => expect(Math.abs(v - (want[j] as number))).toBeLessThanOrEqual(1e-5));
        });
        expect(server.store.get('digits').batcher.counts()).toMatchObject({ batches: 2, samples: 6 });
        expect(server.store.get('digits').info.device).toBe('wasm');
      } finally {
        await server.close();
      }
    }
  });

  it('sends a runner that takes two batches a second one only when full; a partial batch waits for the first', async () => {
    // A runner answering each sample with its sum, when the test releases it: what is running is known exactly.
    const held: Array<{ batch: number; release: () => void }> = [];
    const runner = {
      inputSize: 2,
      outputSize: 1,
      concurrency: 2,
      run: (input: Float32Array, batch: number) =>
        new Promise<Float32Array>((resolve) => {
          held.push({ batch, release: () => resolve(Float32Array.from({ length: batch }, (_, i) => (input[2 * i] as number) + (input[2 * i + 1] as number))) });
        }),
    };
    // No queue delay: a lone request would run at once, unless a batch is already running.
    const batcher = new Batcher(runner, { maxBatchSize: 3, maxQueueDelayMs: 0, maxQueueSize: 64 });
    const submit = (a: number) => batcher.submit(Float32Array.of(a, 1), 1).then((r) => Array.from(r.output));
    const tick = () => new Promise((r) => setImmediate(r));
    const first = submit(1);
    await tick();
    expect(held.map((h) => h.batch)).toEqual([1]);
    // Two more while it runs: not a full batch, so they wait.
    const partial = [submit(2), submit(3)];
    await tick();
    expect(held.map((h) => h.batch)).toEqual([1]);
    expect(batcher.depth()).toBe(2);
    // A third fills it: sent at once, beside the running one.
    const filling = submit(4);
    await tick();
    expect(held.map((h) => h.batch)).toEqual([1, 3]);
    // Both slots taken: even a full batch waits.
    const later = [submit(5), submit(6), submit(7)];
    await tick();
    expect(held).toHaveLength(2);
    (held[0] as { release: () => void }).release();
    expect(await first).toEqual([2]);
    await tick();
    expect(held.map((h) => h.batch)).toEqual([1, 3, 3]);
    (held[1] as { release: () => void }).release();
    (held[2] as { release: () => void }).release();
    expect(await Promise.all([...partial, filling, ...later])).toEqual([[3], [4], [5], [6], [7], [8]]);
    expect(batcher.counts()).toMatchObject({ batches: 3, samples: 7 });
  });

  it('refuses a model that cannot load with the same error on the thread as without it', async () => {
    const broken = join(dir, 'broken.tamp');
    writeFileSync(broken, 'not a model');
    const failures: Array<{ code: string; message: string }> = [];
    for (const inferenceThread of [true, false]) {
      const store = new ModelStore({ device: 'wasm', batching: { maxBatchSize: 8, maxQueueDelayMs: 1, maxQueueSize: 64 }, inferenceThread, log });
      try {
        for (const path of [broken, join(dir, 'missing.tamp')]) {
          const error = await store.load('m', '1', path).then(() => undefined, (e: unknown) => e);
          expect(error).toBeInstanceOf(TampError);
          failures.push({ code: (error as TampError).code, message: (error as TampError).message });
        }
        // The store still loads and serves after the refusals.
        const served = await store.load('digits', '1', DIGITS);
        expect((await served.batcher.submit(samples(1), 1)).output).toHaveLength(10);
      } finally {
        await store.close();
      }
    }
    expect(failures.slice(0, 2)).toEqual(failures.slice(2));
  });

  it('loads a new version before unloading the old on the thread, with no failed request during the reload', async () => {
    const repo = join(dir, 'repo');
    mkdirSync(join(repo, 'digits', '1'), { recursive: true });
    copyFileSync(DIGITS, join(repo, 'digits', '1', 'model.tamp'));
    const server = await startServe({ repository: repo, httpPort: 0, device: 'wasm', batching: { maxBatchSize: 4, maxQueueDelayMs: 1, maxQueueSize: 64 }, inferenceThread: true, pollMs: 50, log });
    const base = `http://127.0.0.1:${server.httpPort}`;
    try {
      let stop = false;
      const statuses: number[] = [];
      const loops = Array.from({ length: 3 }, async () => {
        while (!stop && statuses.length < 5_000) statuses.push((await infer(base, samples(1), 1)).status);
      });
      const waitFor = async (cond: () => boolean) => {
        for (let i = 0; i < 2_000 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
        expect(cond()).toBe(true);
      };
      mkdirSync(join(repo, 'digits', '2'));
      copyFileSync(DIGITS, join(repo, 'digits', '2', 'model.tamp'));
      await waitFor(() => server.store.versions('digits').join() === '1,2');
      rmSync(join(repo, 'digits', '1'), { recursive: true });
      await waitFor(() => server.store.versions('digits').join() === '2');
      const during = statuses.length;
      await waitFor(() => statuses.length > during + 3);
      stop = true;
      await Promise.all(loops);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('runs `tamp serve` with batching (the thread on by default) and stops on SIGTERM', async () => {
    const [port] = await freePorts(1);
    const child = spawn(process.execPath, [TAMP_BIN, 'serve', '--model', `digits=${DIGITS}`, '--http-port', String(port), '--grpc-port', '0', '--device', 'wasm', '--max-batch-size', '8', '--max-queue-delay-ms', '1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      const answers = await Promise.all([1, 2, 3].map((seed) => infer(base, samples(2, seed), 2)));
      expect(answers.map((a) => [a.status, a.data.length])).toEqual([[200, 20], [200, 20], [200, 20]]);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
    expect(JSON.parse(stdout.trim())).toMatchObject({ stoppedBy: 'SIGTERM' });
  });
});
