import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { foldBatchNorm } from './fold-batchnorm.js';
import { artifactWeights, tampToArtifacts } from './tfjs-bridge.js';

async function artifactsOf(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => ((captured = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
  return captured as tf.io.ModelArtifacts;
}

/** Every weight random, batch norm variances positive: folding must hold for any statistics, not just tfjs's initial ones. */
function randomize(model: tfl.LayersModel, seed: number): void {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  model.setWeights(model.weights.map((w) => tf.tensor(Float32Array.from({ length: (w.shape as number[]).reduce((a, b) => a * b, 1) }, () => (w.originalName.includes('variance') ? 0.3 + Math.abs(next()) : next())), w.shape as number[])));
}

function bnBlock(x: tfl.SymbolicTensor, layer: tfl.layers.Layer, relu = true): tfl.SymbolicTensor {
  let y = tfl.layers.batchNormalization({ epsilon: 1e-3 }).apply(layer.apply(x)) as tfl.SymbolicTensor;
  if (relu) y = tfl.layers.reLU({ maxValue: 6 }).apply(y) as tfl.SymbolicTensor;
  return y;
}

let model: tfl.LayersModel;

beforeAll(async () => {
  await tf.setBackend('cpu');
  const input = tfl.input({ shape: [8, 8, 3] });
  const a = bnBlock(input, tfl.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false }));
  const b = bnBlock(a, tfl.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthMultiplier: 2 }));
  const c = bnBlock(b, tfl.layers.separableConv2d({ filters: 8, kernelSize: 3, padding: 'same', useBias: false }), false);
  const sum = tfl.layers.add().apply([a, c]) as tfl.SymbolicTensor;
  // A BN after an activation cannot fold: it stays.
  const after = tfl.layers.batchNormalization().apply(tfl.layers.reLU().apply(sum)) as tfl.SymbolicTensor;
  const pooled = tfl.layers.globalAveragePooling2d({}).apply(after) as tfl.SymbolicTensor;
  const dense = bnBlock(pooled, tfl.layers.dense({ units: 5 }), false);
  model = tfl.model({ inputs: input, outputs: dense });
  randomize(model, 3);
});

describe('foldBatchNorm', () => {
  it('folds BN into Conv2D, DepthwiseConv2D, SeparableConv2D and Dense; outputs within 1e-5 before quantization', async () => {
    const artifacts = await artifactsOf(model);
    const fold = foldBatchNorm(artifacts.modelTopology, artifactWeights(artifacts));
    expect(fold.folded).toHaveLength(4);
    const layers = (fold.modelTopology as { config: { layers: Array<{ class_name: string; config: { use_bias?: boolean } }> } }).config.layers;
    expect(layers.filter((l) => l.class_name === 'BatchNormalization')).toHaveLength(1);
    expect(layers.filter((l) => l.class_name === 'Conv2D').every((l) => l.config.use_bias === true)).toBe(true);
    // Stock tfjs loads the folded model.
    const folded = await tfl.loadLayersModel({
      load: async () => tampToArtifacts({ meta: { producer: 't', created: 'now' }, modelTopology: fold.modelTopology, weights: fold.weights.map((w) => ({ name: w.name, shape: w.shape, encoding: { kind: 'f32', data: w.data } })) }),
    });
    let seed = 9;
    const x = tf.tensor(Float32Array.from({ length: 4 * 8 * 8 * 3 }, () => ((seed = (seed * 69069 + 1) % 2 ** 32) / 2 ** 32) * 2 - 1), [4, 8, 8, 3]);
    const want = (await (model.predict(x) as tf.Tensor).data()) as Float32Array;
    const got = (await (folded.predict(x) as tf.Tensor).data()) as Float32Array;
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const worst = got.reduce((m, v, i) => Math.max(m, Math.abs(v - (want[i] as number))), 0);
    expect(worst).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
    expect(folded.getWeights().length).toBe(fold.weights.length);
    folded.dispose();
  });

  it('folds in Sequential models too', async () => {
    const seq = tfl.sequential({
      layers: [tfl.layers.conv2d({ inputShape: [5, 5, 2], filters: 3, kernelSize: 3 }), tfl.layers.batchNormalization(), tfl.layers.flatten(), tfl.layers.dense({ units: 2 })],
    });
    randomize(seq, 8);
    const artifacts = await artifactsOf(seq);
    const fold = foldBatchNorm(artifacts.modelTopology, artifactWeights(artifacts));
    expect(fold.folded).toHaveLength(1);
    expect(fold.weights.map((w) => w.shape)).toEqual([[3, 3, 2, 3], [3], [27, 2], [2]]);
    const folded = await tfl.loadLayersModel({
      load: async () => tampToArtifacts({ meta: { producer: 't', created: 'now' }, modelTopology: fold.modelTopology, weights: fold.weights.map((w) => ({ name: w.name, shape: w.shape, encoding: { kind: 'f32', data: w.data } })) }),
    });
    const x = tf.randomUniform([2, 5, 5, 2], -1, 1, 'float32', 4);
    const want = (await (seq.predict(x) as tf.Tensor).data()) as Float32Array;
    const got = (await (folded.predict(x) as tf.Tensor).data()) as Float32Array;
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    got.forEach((v, i) => expect(Math.abs(v - (want[i] as number))).toBeLessThanOrEqual(1e-5 * Math.max(1, scale)));
    folded.dispose();
    seq.dispose();
  });

  it('leaves a model without foldable BN alone', async () => {
    const plain = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [3], units: 2, activation: 'relu' }), tfl.layers.batchNormalization()] });
    const artifacts = await artifactsOf(plain);
    const fold = foldBatchNorm(artifacts.modelTopology, artifactWeights(artifacts));
    expect(fold.folded).toEqual([]);
    expect(fold.weights.map((w) => w.name)).toEqual(artifactWeights(artifacts).map((w) => w.name));
  });
});
