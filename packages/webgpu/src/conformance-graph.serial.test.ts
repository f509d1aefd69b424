/**
 * Conformance of the MobileNet/ResNet layers and functional topologies
 * (issue 19): every device (WebGPU on SwiftShader, named explicitly; wasm;
 * cpu) against the float64 reference of the plan, within 1e-4 of each
 * sample's output scale, on tiny models with random weights (batch norm
 * statistics included, so folding is exercised with real values):
 *
 *  - two models that between them use every new layer, with branches
 *    (Add of three, Concatenate, a batch norm and a padding nothing can
 *    absorb) and the fusions the GPU does (padding, BN, residual, ReLU6);
 *  - a MobileNet-v2-style model (two inverted-residual blocks) and a
 *    ResNet-style one (identity and projection shortcuts), float32 as
 *    trained and int8 after folding batch norm, the int8 one also within its
 *    quantization's reach of the float32 outputs;
 *  - unsupported layers are MODEL_UNSUPPORTED naming the layer and its class.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '@tamp/core';
import { artifactWeights, artifactsToTamp, encodeTampModel, foldBatchNorm } from '@tamp/compress';
import { DEVICE_NAMES, loadModel, planModel, readModelParts, runReference } from './node/index.js';

type S = tfl.SymbolicTensor;

async function artifactsOf(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => ((captured = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
  return captured as tf.io.ModelArtifacts;
}

function lcg(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
}

/** Random weights (variances positive), kernels scaled by fan-in so activations keep their size through the layers. */
function randomize(model: tfl.LayersModel, seed: number): void {
  const next = lcg(seed);
  model.setWeights(
    model.weights.map((w) => {
      const shape = w.shape as number[];
      const fanIn = shape.length >= 2 ? shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
      const gain = shape.length >= 2 ? 1.7 / Math.sqrt(fanIn) : 0.5;
      const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (w.originalName.includes('variance') ? 0.4 + Math.abs(next()) : next() * gain + (w.originalName.includes('gamma') ? 1 : 0)));
      return tf.tensor(values, shape);
    }),
  );
}

function f32Tamp(artifacts: tf.io.ModelArtifacts, name: string): Uint8Array {
  return encodeTampModel(artifactsToTamp(artifacts, { int8: false, meta: { producer: 'test', created: '2026-01-01T00:00:00Z', model: name } }));
}

/** What `tamp compress --int8` writes: batch norm folded, then int8 kernels per output channel and int8 biases. */
function int8FoldedTamp(artifacts: tf.io.ModelArtifacts, name: string): Uint8Array {
  const fold = foldBatchNorm(artifacts.modelTopology, artifactWeights(artifacts));
  const data = new Uint8Array(fold.weights.reduce((n, w) => n + w.data.byteLength, 0));
  let at = 0;
  for (const w of fold.weights) {
    data.set(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength), at);
    at += w.data.byteLength;
  }
  const folded: tf.io.ModelArtifacts = { modelTopology: fold.modelTopology as object, weightSpecs: fold.weights.map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' })), weightData: data.buffer };
  return encodeTampModel(artifactsToTamp(folded, { int8: true, int8Biases: true, meta: { producer: 'test', created: '2026-01-01T00:00:00Z', model: name } }));
}

function expectClose(actual: Float32Array, reference: ArrayLike<number>, rowSize: number, tolerance: number, what: string): void {
  expect(actual.length, what).toBe(reference.length);
  for (let r = 0; r < reference.length; r += rowSize) {
    let scale = 0;
    for (let i = r; i < r + rowSize; i++) scale = Math.max(scale, Math.abs(reference[i] as number));
    for (let i = r; i < r + rowSize; i++) {
      const error = Math.abs((actual[i] as number) - (reference[i] as number));
      if (error > tolerance * Math.max(scale, 1e-6)) throw new Error(`${what}: output ${i} is ${actual[i]}, expected ${reference[i]} (error ${error.toExponential(2)} > ${tolerance} × ${scale.toExponential(2)})`);
    }
  }
}

/** Run a .tamp on every device against the float64 reference; returns webgpu's outputs and its dispatch count. */
async function conform(bytes: Uint8Array, what: string, batch = 3): Promise<{ out: Float32Array; dispatches: number; ops: readonly string[]; activationBytes: number; unsharedBytes: number }> {
  const parts = await readModelParts(bytes);
  const plan = planModel(parts.modelTopology, parts.weights);
  const per = plan.inputShape.reduce((a, b) => a * b, 1);
  const next = lcg(11);
  const x = Float32Array.from({ length: batch * per }, () => next());
  const reference = runReference(plan, parts.weights, x, batch);
  const row = plan.outputShape.reduce((a, b) => a * b, 1);
  let out: Float32Array = new Float32Array(0);
  let dispatches = 0;
  let activationBytes = 0;
  for (const device of DEVICE_NAMES) {
    const m = await loadModel(bytes, { device });
    try {
      expect(m.info().device).toBe(device);
      const y = await m.predict(x);
      expect(y.shape).toEqual([batch, ...plan.outputShape]);
      expectClose(y.data, reference, row, 1e-4, `${what} on ${device}`);
      if (device === 'webgpu') {
        out = y.data;
        const info = m.info();
        dispatches = info.dispatches;
        // Everything but weights, the uniforms (16 bytes a dispatch) and the output's staging copy is activations.
        activationBytes = info.gpuBytes - info.gpuWeightBytes - 16 * info.dispatches - Math.max(4, row * batch * 4);
      }
    } finally {
      m.dispose();
    }
  }
  return { out, dispatches, ops: plan.ops.map((o) => o.kind), activationBytes, unsharedBytes: plan.tensorSizes.reduce((a, b) => a + b, 0) * 4 * batch };
}

function mobilenetStyle(): tfl.LayersModel {
  const bn = (x: S) => tfl.layers.batchNormalization().apply(x) as S;
  const relu6 = (x: S) => tfl.layers.reLU({ maxValue: 6 }).apply(x) as S;
  const conv = (x: S, filters: number, kernelSize = 1, strides = 1) => tfl.layers.conv2d({ filters, kernelSize, strides, padding: 'same', useBias: false }).apply(x) as S;
  const block = (x: S, expand: number, out: number, strides: number) => {
    let y = relu6(bn(conv(x, expand)));
    if (strides === 2) y = tfl.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]] }).apply(y) as S;
    y = relu6(bn(tfl.layers.depthwiseConv2d({ kernelSize: 3, strides, padding: strides === 2 ? 'valid' : 'same', useBias: false }).apply(y) as S));
    y = bn(conv(y, out));
    const inC = x.shape[3] as number;
    return strides === 1 && inC === out ? (tfl.layers.add().apply([x, y]) as S) : y;
  };
  const input = tfl.input({ shape: [12, 12, 3] });
  let x = relu6(bn(conv(input, 8, 3, 2)));
  x = block(x, 16, 8, 1);
  x = block(x, 24, 12, 2);
  x = tfl.layers.globalAveragePooling2d({}).apply(x) as S;
  x = tfl.layers.dropout({ rate: 0.2 }).apply(x) as S;
  return tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 10, activation: 'softmax' }).apply(x) as S });
}

function resnetStyle(): tfl.LayersModel {
  const unit = (x: S, filters: number, strides: number, relu: boolean) => {
    const y = tfl.layers.batchNormalization().apply(tfl.layers.conv2d({ filters, kernelSize: 3, strides, padding: 'same' }).apply(x) as S) as S;
    return relu ? (tfl.layers.activation({ activation: 'relu' }).apply(y) as S) : y;
  };
  const residual = (x: S, filters: number, strides: number) => {
    const y = unit(unit(x, filters, strides, true), filters, 1, false);
    const shortcut = strides === 1 ? x : (tfl.layers.batchNormalization().apply(tfl.layers.conv2d({ filters, kernelSize: 1, strides, useBias: false }).apply(x) as S) as S);
    return tfl.layers.activation({ activation: 'relu' }).apply(tfl.layers.add().apply([y, shortcut]) as S) as S;
  };
  const input = tfl.input({ shape: [8, 8, 3] });
  let x = unit(input, 8, 1, true);
  x = residual(x, 8, 1);
  x = residual(x, 16, 2);
  x = tfl.layers.globalAveragePooling2d({}).apply(x) as S;
  return tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 10 }).apply(x) as S });
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('conformance of the MobileNet/ResNet layers (every device against the float64 reference)', () => {
  it('runs every new layer: depthwise (multiplier 1 and 2), separable, BN, ReLU6, pads, upsampling, global pooling, Add, Concatenate', async () => {
    const input = tfl.input({ shape: [9, 9, 3] });
    let a = tfl.layers.zeroPadding2d({ padding: [[1, 0], [2, 1]] }).apply(input) as S;
    a = tfl.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, useBias: false }).apply(a) as S;
    a = tfl.layers.reLU({ maxValue: 6 }).apply(tfl.layers.batchNormalization().apply(a) as S) as S;
    a = tfl.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', activation: 'relu6' }).apply(a) as S;
    a = tfl.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, depthMultiplier: 2 }).apply(a) as S;
    a = tfl.layers.separableConv2d({ filters: 5, kernelSize: 2, padding: 'same', activation: 'relu' }).apply(a) as S;
    a = tfl.layers.upSampling2d({ size: [2, 3] }).apply(a) as S;
    a = tfl.layers.globalMaxPooling2d({}).apply(a) as S;
    a = tfl.layers.batchNormalization().apply(tfl.layers.dense({ units: 6 }).apply(a) as S) as S;
    const layersA = tfl.model({ inputs: input, outputs: tfl.layers.activation({ activation: 'softmax' }).apply(a) as S });

    const inB = tfl.input({ shape: [6, 6, 4] });
    const normed = tfl.layers.batchNormalization().apply(inB) as S;
    const c1 = tfl.layers.conv2d({ filters: 4, kernelSize: 1 }).apply(normed) as S;
    const c2 = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(normed) as S;
    const sum = tfl.layers.reLU().apply(tfl.layers.add().apply([c1, c2, inB]) as S) as S;
    let b = tfl.layers.concatenate().apply([sum, inB, c1]) as S;
    b = tfl.layers.zeroPadding2d({ padding: 1 }).apply(b) as S;
    b = tfl.layers.maxPooling2d({ poolSize: 3, strides: 2 }).apply(b) as S;
    b = tfl.layers.globalAveragePooling2d({}).apply(b) as S;
    const layersB = tfl.model({ inputs: inB, outputs: tfl.layers.dense({ units: 3 }).apply(tfl.layers.flatten().apply(tfl.layers.reshape({ targetShape: [3, 4] }).apply(b) as S) as S) as S });

    const seen = new Set<string>();
    for (const [i, model] of [layersA, layersB].entries()) {
      randomize(model, 5 + i);
      const r = await conform(f32Tamp(await artifactsOf(model), `layers-${i}`), `layer model ${i}`);
      r.ops.forEach((k) => seen.add(k));
      // A: 13 operations in 9 dispatches (padding, BN and ReLU6 into the first conv, BN into the dense layer).
      // B: 10 operations in 11 (the ReLU joins the three-way Add; the concatenation takes one dispatch per input).
      expect([r.ops.length, r.dispatches], `layer model ${i}: operations and dispatches`).toEqual(i === 0 ? [13, 9] : [10, 11]);
      expect(r.activationBytes, `layer model ${i}: activation buffers reused by liveness`).toBeLessThan(r.unsharedBytes);
      model.dispose();
    }
    expect([...seen].sort()).toEqual(['activation', 'add', 'batchnorm', 'concat', 'conv2d', 'dense', 'depthwise', 'globalpool', 'pad', 'pool', 'upsample']);
  });

  it('runs a MobileNet-v2-style and a ResNet-style model, float32 and int8 (batch norm folded), on every device', async () => {
    for (const [name, build, fusedDispatches] of [
      // 7 convolutions (BN, ReLU6, padding and the residual Add fused into them), global pooling, dense, softmax.
      ['mobilenet-style', mobilenetStyle, 10],
      // 6 convolutions (BN, ReLU and both Adds fused), global pooling, dense.
      ['resnet-style', resnetStyle, 8],
    ] as const) {
      const model = build();
      randomize(model, 21);
      const artifacts = await artifactsOf(model);
      const f32 = await conform(f32Tamp(artifacts, name), `${name} float32`);
      expect(f32.ops).toContain('batchnorm');
      expect(f32.dispatches, `${name}: one dispatch per convolution, BN/activation/Add fused`).toBe(fusedDispatches);
      const int8 = await conform(int8FoldedTamp(artifacts, name), `${name} int8`);
      expect(int8.ops, `${name}: no batch norm left after folding`).not.toContain('batchnorm');
      expect(int8.dispatches).toBe(fusedDispatches);
      // int8 weights (and biases) move outputs by a few percent of their scale at most on a model this small.
      expectClose(int8.out, f32.out, 10, 0.05, `${name}: int8 against float32`);
      model.dispose();
    }
  });

  it('refuses unsupported layers with MODEL_UNSUPPORTED naming the layer and its class', async () => {
    const input = tfl.input({ shape: [4, 4, 2] });
    const t = tfl.layers.conv2dTranspose({ filters: 2, kernelSize: 2, name: 'decoder' }).apply(tfl.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(input) as S) as S;
    const transposed = tfl.model({ inputs: input, outputs: t });
    const seq = tfl.input({ shape: [5, 3] });
    const lstm = tfl.model({ inputs: seq, outputs: tfl.layers.lstm({ units: 4, name: 'memory', recurrentInitializer: 'glorotUniform' }).apply(seq) as S });
    for (const [model, pattern] of [
      [transposed, /layer "decoder" is a Conv2DTranspose\. The inference engine runs these layers: .*DepthwiseConv2D/],
      [lstm, /layer "memory" is a LSTM\./],
    ] as const) {
      const error = await loadModel(f32Tamp(await artifactsOf(model), 'unsupported'), { device: 'cpu' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ModelError);
      expect((error as ModelError).code).toBe('MODEL_UNSUPPORTED');
      expect((error as ModelError).message).toMatch(pattern);
      model.dispose();
    }
  });
});
