/**
 * Compression part 2 end to end through `tamp compress`: pruning to an exact
 * sparsity while fine-tuning, masks that survive fine-tuning and weight
 * sharing, 2:4 structure, per-layer scope, the report's per-layer columns and
 * the accuracy-against-sparsity plot. Models are trained for real (briefly).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TampModel, type TampTensor, decodeTampModel, encodedBytes, tensorValues } from '@tamp/compress';
import type { CompressReport } from '@tamp/compress/node';
import { jsonOf, runTamp } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-compress2-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function kernels(model: TampModel): Array<{ name: string; shape: readonly number[]; values: Float32Array }> {
  return model.weights.filter((w) => w.shape.length >= 2).map((w) => ({ name: w.name, shape: w.shape, values: tensorValues(w) }));
}

function zeros(values: Float32Array): number {
  return values.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
}

async function compress(name: string, flags: string[]): Promise<{ report: CompressReport; model: TampModel }> {
  const out = join(dir, name);
  const r = await runTamp(['compress', join(dir, 'lenet-300-100', 'model', 'model.json'), '--out', out, '--backend', 'wasm', '--json', ...flags]);
  expect(r.code, r.stderr).toBe(0);
  const report = jsonOf<CompressReport>(r);
  return { report, model: decodeTampModel(readFileSync(report.tamp)) };
}

describe('compression part 2: prune, share, Huffman', () => {
  beforeAll(async () => {
    const train = await runTamp(['train', '--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', '3', '--backend', 'wasm', '--out', join(dir, 'lenet-300-100')]);
    expect(train.code, train.stderr).toBe(0);
  });

  it('--prune 0.9 --clusters 16 --int8: exact global sparsity, masks survive sharing, ≤ 16 values per kernel, a plot', async () => {
    const { report, model } = await compress('pruned', ['--prune', '0.9', '--clusters', '16', '--int8', '--finetune-epochs', '2']);
    const ks = kernels(model);
    const total = ks.reduce((n, k) => n + k.values.length, 0);
    // Global scope: exactly round(0.9 × all kernel weights) are zero, after fine-tuning and weight sharing.
    expect(ks.reduce((n, k) => n + zeros(k.values), 0)).toBe(Math.round(0.9 * total));
    for (const k of ks) {
      const distinct = new Set(k.values);
      expect(distinct.size, k.name).toBeLessThanOrEqual(16);
      expect(distinct.has(0), k.name).toBe(true);
      const w = model.weights.find((t) => t.name === k.name);
      expect(w?.encoding.kind).toBe('clustered');
      // Stored sparse (Huffman-coded gaps and indices) unless packed indices are smaller: the compressor keeps the smaller.
      const other = { ...(w as TampTensor), storage: w?.storage === 'sparse' ? ('dense' as const) : ('sparse' as const) };
      expect(encodedBytes(w as TampTensor), k.name).toBeLessThanOrEqual(encodedBytes(other));
    }
    expect(model.weights.find((t) => t.name.includes('kernel') && t.shape[0] === 784)?.storage).toBe('sparse');
    expect(report.techniques).toEqual(['prune 90.0%', '16 shared values', 'int8', 'huffman']);
    expect(report.ratio).toBeGreaterThan(25);
    expect(report.compressedBytes).toBe(readFileSync(report.tamp).length);
    expect(report.accuracyBefore).toBeGreaterThan(0.9);
    expect((report.accuracyBefore as number) - (report.accuracyAfter as number)).toBeLessThan(0.03);
    // Per-layer columns: kept matches the file, bits add up.
    for (const row of report.layers.filter((l) => l.shape.length >= 2)) {
      const k = ks.find((x) => x.name === row.name) as { values: Float32Array };
      expect(row.kept).toBeCloseTo(1 - zeros(k.values) / k.values.length, 10);
      const sparse = row.encoding.includes('sparse');
      if (sparse) {
        expect(row.indexBits).toBeGreaterThan(1);
        expect(row.indexBits).toBeLessThan(8);
      } else {
        expect(row.indexBits).toBe(0);
      }
      expect(row.valueBits).toBeGreaterThan(0.5);
      expect(row.valueBits).toBeLessThanOrEqual(4);
      expect(row.bitsPerWeight).toBeCloseTo((row.bytes * 8) / row.parameters, 10);
      expect(row.bitsPerWeight).toBeLessThan(5);
    }
    // The largest layer carries most of the pruning: under one bit per weight.
    expect(report.layers.find((l) => l.shape[0] === 784)?.bitsPerWeight).toBeLessThan(1);
    // The curve climbs to the target, and the plot draws it.
    const curve = report.sparsityCurve;
    expect(curve[0]?.sparsity).toBe(0);
    expect(curve.at(-1)?.sparsity).toBeCloseTo(0.9, 10);
    for (let i = 1; i < curve.length; i++) expect((curve[i] as { sparsity: number }).sparsity).toBeGreaterThanOrEqual((curve[i - 1] as { sparsity: number }).sparsity);
    expect(curve.length).toBeGreaterThan(5);
    const svg = readFileSync(report.plot as string, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect((svg.match(/<circle /g) ?? []).length).toBe(curve.length);
    // tamp eval reads the Huffman-coded file and agrees with the report.
    const evaluation = await runTamp(['eval', report.tamp, '--dataset', 'mnist', '--json']);
    expect(evaluation.code, evaluation.stderr).toBe(0);
    expect(jsonOf<{ accuracy: number }>(evaluation).accuracy).toBe(report.accuracyAfter);
  });

  it('--pattern 2:4: every group of four inputs keeps exactly two, in every output channel', async () => {
    // float32 values: int8 could round a small kept weight to 0, which would hide whether the mask held.
    const { report, model } = await compress('two-four', ['--pattern', '2:4', '--finetune-epochs', '1']);
    for (const k of kernels(model)) {
      const channels = k.shape.at(-1) as number;
      const rows = k.values.length / channels;
      expect(rows % 4, k.name).toBe(0);
      for (let c = 0; c < channels; c++) {
        for (let r0 = 0; r0 < rows; r0 += 4) {
          let kept = 0;
          for (let r = r0; r < r0 + 4; r++) if (k.values[r * channels + c] !== 0) kept++;
          expect(kept, `${k.name} channel ${c} rows ${r0}..${r0 + 3}`).toBe(2);
        }
      }
    }
    expect(report.techniques).toContain('prune 2:4');
    expect((report.accuracyBefore as number) - (report.accuracyAfter as number)).toBeLessThan(0.02);
  });

  it('--prune-scope layer: each layer loses the same fraction', async () => {
    const { model } = await compress('per-layer', ['--prune', '0.75', '--prune-scope', 'layer', '--finetune-epochs', '1']);
    for (const k of kernels(model)) expect(zeros(k.values), k.name).toBe(Math.round(0.75 * k.values.length));
    // Without --int8 the kept weights stay float32, stored sparse.
    for (const w of model.weights.filter((t) => t.shape.length >= 2)) expect([w.encoding.kind, w.storage]).toEqual(['f32', 'sparse']);
  });

  it('--finetune-epoch-size: each fine-tuning epoch runs that many samples, not the whole split', async () => {
    const { report, model } = await compress('epoch-size', ['--prune', '0.5', '--finetune-epochs', '2', '--finetune-epoch-size', '640']);
    // 2 epochs × 640 samples / batch 64 = 20 steps; the curve's last point is taken after the last step.
    expect(report.sparsityCurve.at(-1)?.step).toBe(20);
    const ks = kernels(model);
    expect(ks.reduce((n, k) => n + zeros(k.values), 0)).toBe(Math.round(0.5 * ks.reduce((n, k) => n + k.values.length, 0)));
  });

  it('weight sharing is deterministic under a seed', async () => {
    const a = await compress('seed-a', ['--clusters', '8', '--finetune-epochs', '0', '--seed', '5']);
    const b = await compress('seed-b', ['--clusters', '8', '--finetune-epochs', '0', '--seed', '5']);
    const ka = kernels(a.model);
    const kb = kernels(b.model);
    ka.forEach((k, i) => expect(Buffer.from(k.values.buffer).equals(Buffer.from((kb[i] as { values: Float32Array }).values.buffer)), k.name).toBe(true));
  });

  it('rejects --prune together with --pattern 2:4, saying why', async () => {
    const both = await runTamp(['compress', join(dir, 'lenet-300-100', 'model', 'model.json'), '--out', join(dir, 'x'), '--prune', '0.5', '--pattern', '2:4']);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/--pattern 2:4 prunes exactly half/);
  });
});
