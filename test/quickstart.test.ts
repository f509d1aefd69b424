import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonOf, runTamp } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-quickstart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tamp quickstart (what pnpm start runs)', () => {
  it('trains LeNet-300-100 on MNIST on a local cluster, saves, reloads and evaluates it', async () => {
    const out = join(dir, 'qs');
    const r = await runTamp(['quickstart', '--epochs', '1', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = jsonOf<{
      train: { testAccuracy: number; steps: number; workers: number; ps: number; mode: string };
      evaluation: { accuracy: number; count: number };
      compression: { ratio: number; accuracyBefore: number; accuracyAfter: number; techniques: string[] };
      inference: { device: string; accuracy: number; count: number; latencyMs: { p50: number; p90: number }; gpuWeightBytes: number };
    }>(r);
    // Until the workers take their first step it says what it waits for (cluster-progress.test.ts), never "done":0 lines.
    expect(r.stderr).not.toMatch(/"done":0[,}]/);
    expect(result.compression.accuracyBefore).toBe(result.evaluation.accuracy);
    // Pruned 90%, shared and Huffman-coded, fine-tuned for two epochs: far smaller, and no worse than 2 points.
    expect(result.compression.techniques).toEqual(['prune 90.0%', '32 shared values', 'int8', 'huffman']);
    expect(result.compression.ratio).toBeGreaterThan(25);
    expect(result.compression.accuracyBefore - result.compression.accuracyAfter).toBeLessThanOrEqual(0.02);
    // The compressed model then runs on the best device present (WebGPU on a hardware adapter, else WASM: auto
    // never takes SwiftShader) and scores what compress measured.
    expect(['webgpu', 'wasm']).toContain(result.inference.device);
    expect(result.inference.count).toBe(2000);
    expect(Math.abs(result.inference.accuracy - result.compression.accuracyAfter)).toBeLessThanOrEqual(0.001);
    expect(result.inference.latencyMs.p50).toBeGreaterThan(0);
    expect(result.inference.latencyMs.p90).toBeGreaterThanOrEqual(result.inference.latencyMs.p50);
    expect(existsSync(join(out, 'compressed', 'model.tamp'))).toBe(true);
    expect(result.train).toMatchObject({ workers: 2, ps: 1, mode: 'async' });
    // Two workers take global batches of 2 × 64 from 7,000 digits: 54 steps each.
    expect(result.train.steps).toBe(2 * Math.floor(7000 / 128));
    expect(result.evaluation.count).toBe(2000);
    // One async epoch (54 steps per worker) lands at 80-90%; asynchrony makes the exact figure vary.
    expect(result.evaluation.accuracy).toBeGreaterThan(0.7);
    expect(result.evaluation.accuracy).toBe(result.train.testAccuracy);
    expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'))).toMatchObject({ model: 'lenet-300-100', dataset: 'mnist' });
    const text = await runTamp(['quickstart', '--epochs', '1', '--out', out]);
    expect(text.stdout).toMatch(/Tamp quickstart\n/);
    expect(text.stdout).toMatch(/^stage +what +result +details$/m);
    expect(text.stdout).toMatch(/train +lenet-300-100 on mnist, 2 workers \+ 1 ps, async/);
    expect(text.stdout).toMatch(/evaluate +saved model, mnist test split \(2000\) +accuracy \d+\.\d\d%/);
    expect(text.stdout).toMatch(/compress +prune 90\.0%, 32 shared values, int8, huffman, \.tamp +accuracy \d+\.\d\d% +\d+\.\d KiB, \d+\.\d\dx smaller/);
    expect(text.stdout).toMatch(/infer +model\.tamp on (webgpu|wasm) \(.+\) +accuracy \d+\.\d\d% +\d+\.\d\d ms per digit \(p50\)/);
    expect(text.stdout).toMatch(/compressed \(model.tamp\)/);
  });
});
