/** `tamp bench infer`: the command a Jetson owner runs; real bin, real Dawn (SwiftShader here), real files. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonOf, runTamp } from './helpers/tamp.js';

const fixture = fileURLToPath(new URL('./fixtures/shapes-detector/model.json', import.meta.url));

interface BenchResult {
  device: string;
  adapter: string;
  software: boolean;
  batch: number;
  iterations: number;
  latencyMs: { min: number; p50: number; p90: number; p99: number; max: number; mean: number };
  dispatches: number;
  gpuWeightBytes: number;
  float32WeightBytes: number;
}

describe('tamp bench infer', () => {
  let dir: string;
  let tampFile: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tamp-bench-infer-'));
    const r = await runTamp(['compress', fixture, '--int8', '--out', join(dir, 'int8'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    tampFile = join(dir, 'int8', 'model.tamp');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('on WebGPU: prints the adapter, ordered latency percentiles, dispatches and the int8 weight bytes on the GPU', async () => {
    const r = await runTamp(['bench', 'infer', tampFile, '--device', 'webgpu', '--batch', '2', '--iterations', '4', '--warmup', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const b = jsonOf<BenchResult>(r);
    expect(b.device).toBe('webgpu');
    expect(b.adapter).toMatch(/swiftshader/i);
    expect(b.software).toBe(true);
    expect([b.batch, b.iterations]).toEqual([2, 4]);
    const l = b.latencyMs;
    expect(l.min).toBeGreaterThan(0);
    expect(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max).toBe(true);
    expect(b.dispatches).toBe(6); // five convolutions and the head, bias and ReLU fused into each
    expect(b.float32WeightBytes).toBe(97_960 * 4);
    expect(b.gpuWeightBytes / b.float32WeightBytes).toBeGreaterThan(0.24);
    expect(b.gpuWeightBytes / b.float32WeightBytes).toBeLessThanOrEqual(0.3);
    const text = await runTamp(['bench', 'infer', tampFile, '--device', 'webgpu', '--iterations', '2']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/adapter\s+.*SwiftShader/i);
    expect(text.stdout).toMatch(/latency p50 \/ p90 \/ p99\s+[\d.]+ ms \/ [\d.]+ ms \/ [\d.]+ ms/);
    expect(text.stdout).toMatch(/weights on the GPU\s+[\d.]+ KiB \(0\.2\d\dx of fp32/);
  });

  it('on WASM: no GPU bytes; an unknown benchmark or a missing model is a clear error', async () => {
    const r = await runTamp(['bench', 'infer', tampFile, '--device', 'wasm', '--iterations', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const b = jsonOf<BenchResult>(r);
    expect(b.device).toBe('wasm');
    expect(b.gpuWeightBytes).toBe(0);
    const unknown = await runTamp(['bench', 'train', tampFile]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown benchmark "train": tamp bench infer <model>/);
    const missing = await runTamp(['bench', 'infer', join(dir, 'nope.tamp')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.tamp/);
  });
});
