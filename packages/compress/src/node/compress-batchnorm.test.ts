import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FASHION_MNIST_DIR, loadLayersModelFile, saveLayersModel, writeIdxHead } from '@tamp/core/node';
import { decodeTampModel } from '../format/tamp-format.js';
import { loadTampAsLayersModel } from '../tfjs-bridge.js';
import { compressModel } from './compress.js';

type S = tfl.SymbolicTensor;
const dir = mkdtempSync(join(tmpdir(), 'tamp-compress-bn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Two inverted-residual blocks (expand 1x1, depthwise 3x3, project 1x1, each with batch norm), random weights and statistics. */
function tinyMobilenet(): tfl.LayersModel {
  const bn = (x: S) => tfl.layers.batchNormalization().apply(x) as S;
  const relu6 = (x: S) => tfl.layers.reLU({ maxValue: 6 }).apply(x) as S;
  const pw = (x: S, filters: number) => tfl.layers.conv2d({ filters, kernelSize: 1, useBias: false }).apply(x) as S;
  const block = (x: S, strides: number) => {
    let y = relu6(bn(pw(x, 24)));
    y = relu6(bn(tfl.layers.depthwiseConv2d({ kernelSize: 3, strides, padding: 'same', useBias: false }).apply(y) as S));
    y = bn(pw(y, 8));
    return strides === 1 ? (tfl.layers.add().apply([x, y]) as S) : y;
  };
  const input = tfl.input({ shape: [8, 8, 3] });
  let x = relu6(bn(tfl.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', useBias: false }).apply(input) as S));
  x = block(block(x, 1), 2);
  x = tfl.layers.globalAveragePooling2d({}).apply(x) as S;
  const model = tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 4, activation: 'softmax' }).apply(x) as S });
  let s = 5;
  const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  model.setWeights(model.weights.map((w) => tf.tensor(Float32Array.from({ length: (w.shape as number[]).reduce((a, b) => a * b, 1) }, () => (w.originalName.includes('variance') ? 0.5 + Math.abs(next()) : next() * 0.5)), w.shape as number[])));
  return model;
}

let modelJson: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  const model = tinyMobilenet();
  modelJson = await saveLayersModel(model, join(dir, 'model'), { model: 'tiny-mobilenet' });
  model.dispose();
});

describe('tamp compress on a MobileNet-style model', () => {
  it('folds batch norm first, keeps depthwise kernels dense with int8 scales per output channel, prunes and shares the rest, and writes an export stock tfjs loads', async () => {
    const out = join(dir, 'out');
    const report = await compressModel({ model: modelJson, out, int8: true, prune: 0.5, scope: 'layer', clusters: 16, finetuneEpochs: 0 });
    expect(report.techniques).toContain('batch norm folded');
    const tamp = decodeTampModel(readFileSync(report.tamp));
    const layers = (tamp.modelTopology as { config: { layers: Array<{ class_name: string }> } }).config.layers;
    expect(layers.some((l) => l.class_name === 'BatchNormalization')).toBe(false);
    const depthwise = tamp.weights.filter((w) => w.name.endsWith('depthwise_kernel'));
    expect(depthwise).toHaveLength(2);
    for (const w of depthwise) {
      // int8, one scale per output channel (24 = in 24 × multiplier 1), no zeros forced in by pruning.
      expect(w.encoding.kind).toBe('int8');
      expect(w.encoding.kind === 'int8' && w.encoding.scales.length).toBe(24);
      expect(report.layers.find((l) => l.name === w.name)?.kept).toBeGreaterThan(0.95);
    }
    // The pointwise kernels are pruned (and shared).
    const pointwise = report.layers.filter((l) => l.shape.length === 4 && l.shape[0] === 1 && l.shape[1] === 1);
    expect(pointwise.length).toBeGreaterThanOrEqual(4);
    for (const l of pointwise) expect(l.kept).toBeLessThanOrEqual(0.51);

    // The .tamp model and the stock-tfjs export (loaded by tf.loadLayersModel through a file handler) agree on random inputs.
    const compressed = await loadTampAsLayersModel(readFileSync(report.tamp));
    const stock = await loadLayersModelFile(report.tfjs.modelJson);
    const x = tf.randomUniform([4, 8, 8, 3], -1, 1, 'float32', 3);
    const a = (await (compressed.predict(x) as tf.Tensor).data()) as Float32Array;
    const b = (await (stock.predict(x) as tf.Tensor).data()) as Float32Array;
    expect(b.length).toBe(16);
    expect(b.every(Number.isFinite)).toBe(true);
    // Softmax outputs: uint8-affine per-tensor weights against int8 per channel stay within a few hundredths.
    expect(a.reduce((m, v, i) => Math.max(m, Math.abs(v - (b[i] as number))), 0)).toBeLessThan(0.05);
    for (const m of [compressed, stock]) m.dispose();
  });
});

/** A small convolutional MNIST classifier with batch norm after each convolution. */
function tinyBnConvnet(): tfl.LayersModel {
  const input = tfl.input({ shape: [28, 28, 1] });
  let x = input;
  for (const filters of [8, 16]) {
    x = tfl.layers.conv2d({ filters, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: tfl.initializers.glorotUniform({ seed: filters }) }).apply(x) as S;
    x = tfl.layers.reLU().apply(tfl.layers.batchNormalization().apply(x) as S) as S;
  }
  x = tfl.layers.globalAveragePooling2d({}).apply(x) as S;
  return tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }).apply(x) as S });
}

/** An IDX folder holding the first rows of Fashion-MNIST (Debian's dataset-fashion-mnist): small enough for a quick fine-tune and score. */
function fashionSubset(to: string, train: number, test: number): string {
  mkdirSync(to, { recursive: true });
  for (const [name, n] of [['train-images-idx3-ubyte', train], ['train-labels-idx1-ubyte', train], ['t10k-images-idx3-ubyte', test], ['t10k-labels-idx1-ubyte', test]] as const) {
    writeIdxHead(join(FASHION_MNIST_DIR, `${name}.gz`), join(to, name), n);
  }
  return to;
}

describe('tamp compress with fine-tuning on a model with batch norm', () => {
  it('prunes with batch norm in place, folds it after pruning, then shares values and quantizes the folded weights', async () => {
    const model = tinyBnConvnet();
    const data = fashionSubset(join(dir, 'fashion'), 640, 200);
    const json = await saveLayersModel(model, join(dir, 'bn-convnet'), { model: 'tiny-bn-convnet', dataset: data, task: 'classification' });
    model.dispose();
    const lines: string[] = [];
    const report = await compressModel({ model: json, out: join(dir, 'bn-out'), int8: true, prune: 0.5, scope: 'layer', clusters: 8, finetuneEpochs: 1, finetuneEpochSize: 128, dataset: data, log: (l) => lines.push(l) });
    // The order of the steps: pruning (with batch norm), folding, sharing.
    expect(report.techniques.slice(0, 4)).toEqual(['prune 50.0%', 'batch norm folded after pruning', '8 shared values', 'int8']);
    expect(lines.findIndex((l) => l.startsWith('pruning'))).toBeLessThan(lines.findIndex((l) => l.startsWith('folded')));
    expect(lines.findIndex((l) => l.startsWith('folded'))).toBeLessThan(lines.findIndex((l) => l.startsWith('sharing')));
    const tamp = decodeTampModel(readFileSync(report.tamp));
    const layers = (tamp.modelTopology as { config: { layers: Array<{ class_name: string }> } }).config.layers;
    expect(layers.some((l) => l.class_name === 'BatchNormalization')).toBe(false);
    // Folding scaled each output channel: the pruned zeros stayed zero, and the shared values are those of the folded kernels.
    const convs = report.layers.filter((l) => l.shape.length === 4);
    expect(convs).toHaveLength(2);
    for (const row of convs) {
      expect(row.kept, row.name).toBeLessThanOrEqual(0.5);
      expect(row.encoding, row.name).toMatch(/^8 shared values/);
    }
    // The .tamp (codebooks and indices) and the export (the model's weights after the last step) compute the same thing.
    const compressed = await loadTampAsLayersModel(readFileSync(report.tamp));
    const stock = await loadLayersModelFile(report.tfjs.modelJson);
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 5);
    const a = (await (compressed.predict(x) as tf.Tensor).data()) as Float32Array;
    const b = (await (stock.predict(x) as tf.Tensor).data()) as Float32Array;
    expect(a.reduce((m, v, i) => Math.max(m, Math.abs(v - (b[i] as number))), 0)).toBeLessThan(0.05);
    expect(report.accuracyAfter).toBeGreaterThan(0);
    for (const m of [compressed, stock]) m.dispose();
  }, 120_000);
});
