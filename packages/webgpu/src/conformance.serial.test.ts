/**
 * One conformance suite over every device (webgpu, wasm, cpu), on the
 * encodings compression produces: float32 (a tfjs model.json on disk), int8
 * per channel with int8 biases (.tamp), and pruned + shared + Huffman-coded
 * (.tamp, sparse). WebGPU runs on chromium's SwiftShader here, as in CI
 * (named explicitly, so auto's rule against software adapters does not apply).
 *
 *  - outputs equal a float64 reference of the dequantized model within 1e-4
 *    of the output's scale (max |reference| of the sample) on random inputs;
 *  - top-1 is identical across devices on a fixed 256-digit subset;
 *  - weights on the GPU take at most 0.3x their float32 bytes, counted by
 *    wrapping the device's createBuffer (independently of the model's own
 *    count), and dispose() destroys every buffer the model created;
 *  - bad model files and bad inputs give typed errors.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchSource, type Detection, type ImageClassificationDataset, InvalidArgumentError, ModelError, createModel, createTfOptimizer, decodeGrid, detectionsDiffer, gatherBatch, optimizerSettings, renderScene, sceneSeed, trainStep } from '@tamp/core';
import { loadMnist, readModelArtifacts, requestDawnAdapter, writeModelArtifacts } from '@tamp/core/node';
import { type TampModel, type TampTensor, artifactsToTamp, decodeTampModel, encodeTampModel } from '@tamp/compress';
import { pruneWhileFinetuning, shareWeights } from '@tamp/compress/node';
import { DEVICE_NAMES, type DeviceName, type InferenceModel, detect, gridOf, loadModel, planModel, readModelParts, runReference } from './node/index.js';
import { fileURLToPath } from 'node:url';

const dir = mkdtempSync(join(tmpdir(), 'tamp-conformance-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Buffers created on any device while `track` is on, as the device saw them. */
const gpuBuffers = new Map<GPUBuffer, { bytes: number; usage: number; destroyed: boolean }>();
let restoreRequestDevice: (() => void) | undefined;

async function trackBufferCreation(): Promise<void> {
  const { adapter } = await requestDawnAdapter({ allowSoftware: true });
  const proto = Object.getPrototypeOf(adapter) as { requestDevice: GPUAdapter['requestDevice'] };
  const original = proto.requestDevice;
  proto.requestDevice = async function (this: GPUAdapter, descriptor?: GPUDeviceDescriptor) {
    const device = await original.call(this, descriptor);
    const create = device.createBuffer.bind(device);
    device.createBuffer = (d: GPUBufferDescriptor) => {
      const buffer = create(d);
      const entry = { bytes: d.size, usage: d.usage, destroyed: false };
      gpuBuffers.set(buffer, entry);
      const destroy = buffer.destroy.bind(buffer);
      buffer.destroy = () => {
        entry.destroyed = true;
        destroy();
      };
      return buffer;
    };
    return device;
  };
  restoreRequestDevice = () => (proto.requestDevice = original);
}

async function artifactsOf(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => ((captured = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
  return captured as tf.io.ModelArtifacts;
}

async function train(model: tfl.LayersModel, data: ImageClassificationDataset, steps: number): Promise<void> {
  const source = new BatchSource(data.train, { batchSize: 64, seed: 1 });
  const optimizer = createTfOptimizer(optimizerSettings('adam', 0.002));
  for (let step = 0; step < steps; step++) await trainStep(model, optimizer, source.batch(step));
  optimizer.dispose();
}

interface Variant {
  readonly name: string;
  /** A file on disk: model.json or model.tamp. */
  readonly file: string;
  /** Expected weight bytes on the GPU at most this fraction of float32. */
  readonly gpuBudget: number;
}

const variants: Variant[] = [];
const subset = 256;
let digits: Float32Array;

/** int8 kernels per channel and int8 biases per tensor: what `tamp compress --int8` writes. */
function int8Tamp(artifacts: tf.io.ModelArtifacts, name: string): TampModel {
  return artifactsToTamp(artifacts, { int8: true, int8Biases: true, meta: { producer: 'test', created: '2026-01-01T00:00:00Z', model: name } });
}

beforeAll(async () => {
  await trackBufferCreation();
  await tf.setBackend('wasm');
  const mnist = loadMnist();
  digits = gatherBatch(mnist.test, Uint32Array.from({ length: subset }, (_, i) => i)).xs;
  for (const zoo of ['mlp-tiny', 'lenet-5'] as const) {
    const model = createModel(zoo, { seed: 4 });
    await train(model, mnist, zoo === 'lenet-5' ? 12 : 60);
    const artifacts = await artifactsOf(model);
    // float32, as a tfjs model.json with its weights file.
    const jsonDir = join(dir, `${zoo}-f32`);
    writeModelArtifacts(jsonDir, artifacts);
    variants.push({ name: `${zoo} float32 model.json`, file: join(jsonDir, 'model.json'), gpuBudget: 1.01 });
    // int8 kernels per channel, int8 biases per tensor.
    const int8File = join(dir, `${zoo}-int8.tamp`);
    writeFileSync(int8File, encodeTampModel(int8Tamp(artifacts, zoo)));
    variants.push({ name: `${zoo} int8 .tamp`, file: int8File, gpuBudget: 0.3 });
    // Pruned 80% and 16 shared values per layer, stored sparse with Huffman-coded gaps and indices.
    const ft = { dataset: mnist, optimizer: optimizerSettings('adam', 1e-4), batchSize: 64, seed: 1, log: () => {} };
    await pruneWhileFinetuning(model, { sparsity: 0.8, scope: 'global', pattern: 'unstructured' }, 0, ft);
    const shared = await shareWeights(model, 16, 0, ft);
    const base = int8Tamp(await artifactsOf(model), zoo);
    const weights: TampTensor[] = base.weights.map((w) => {
      const s = shared.get(w.name);
      return s === undefined ? w : { name: w.name, shape: w.shape, encoding: { kind: 'clustered', ...s }, storage: 'sparse' };
    });
    const sparseFile = join(dir, `${zoo}-shared.tamp`);
    writeFileSync(sparseFile, encodeTampModel({ ...base, weights }));
    expect(decodeTampModel(readFileSync(sparseFile)).weights.some((w) => w.storage === 'sparse' && w.encoding.kind === 'clustered')).toBe(true);
    variants.push({ name: `${zoo} pruned + shared .tamp`, file: sparseFile, gpuBudget: 0.3 });
    model.dispose();
  }
});

afterAll(() => restoreRequestDevice?.());

function expectClose(actual: Float32Array, reference: Float64Array, rowSize: number, what: string): void {
  expect(actual.length, what).toBe(reference.length);
  for (let r = 0; r < reference.length; r += rowSize) {
    let scale = 0;
    for (let i = r; i < r + rowSize; i++) scale = Math.max(scale, Math.abs(reference[i] as number));
    for (let i = r; i < r + rowSize; i++) {
      const error = Math.abs((actual[i] as number) - (reference[i] as number));
      if (error > 1e-4 * Math.max(scale, 1e-6)) throw new Error(`${what}: output ${i} is ${actual[i]}, the float64 reference ${reference[i]} (error ${error.toExponential(2)} > 1e-4 × ${scale.toExponential(2)})`);
    }
  }
}


function top1(data: Float32Array, classes: number): Int32Array {
  const out = new Int32Array(data.length / classes);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if ((data[r * classes + c] as number) > (data[r * classes + best] as number)) best = c;
    out[r] = best;
  }
  return out;
}

describe('conformance: every device against the float64 reference', () => {
  it('runs each variant on webgpu, wasm and cpu: reference within 1e-4, identical top-1 on 256 digits, GPU bytes and dispose', async () => {
    expect(variants).toHaveLength(6);
    for (const v of variants) {
      const parts = await readModelParts(v.file);
      const plan = planModel(parts.modelTopology, parts.weights);
      const per = plan.inputShape.reduce((a, b) => a * b, 1);
      const batch = 8;
      let seed = 7;
      const random = Float32Array.from({ length: batch * per }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 1.2 - 0.1);
      const reference = runReference(plan, parts.weights, random, batch);
      const tops = new Map<DeviceName, Int32Array>();
      for (const device of DEVICE_NAMES) {
        const before = new Set(gpuBuffers.keys());
        const model: InferenceModel = await loadModel(v.file, { device });
        const info = model.info();
        expect(info.device, v.name).toBe(device);
        const y = await model.predict(random);
        expect(y.shape, v.name).toEqual([batch, ...plan.outputShape]);
        expectClose(y.data, reference, plan.outputShape.reduce((a, b) => a * b, 1), `${v.name} on ${device}`);
        const digitsOut = await model.predict(digits);
        tops.set(device, top1(digitsOut.data, 10));
        const created = [...gpuBuffers.entries()].filter(([b]) => !before.has(b));
        if (device === 'webgpu') {
          // Weight buffers are the STORAGE-only ones (activations are also copied; uniforms and staging differ).
          const weightBytes = created.filter(([, e]) => e.usage === 0x80).reduce((n, [, e]) => n + e.bytes, 0);
          expect(weightBytes, v.name).toBe(info.gpuWeightBytes);
          expect(weightBytes / info.float32WeightBytes, `${v.name}: GPU weight bytes / float32 bytes`).toBeLessThanOrEqual(v.gpuBudget);
          expect(model.info().gpuBuffers).toBe(created.filter(([, e]) => !e.destroyed).length);
        } else {
          expect(created, `${v.name} on ${device} creates no GPU buffers`).toHaveLength(0);
        }
        model.dispose();
        expect(created.every(([, e]) => e.destroyed), `${v.name} on ${device}: dispose() destroys every buffer`).toBe(true);
        await expect(model.predict(random)).rejects.toMatchObject({ code: 'MODEL_DISPOSED' });
      }
      const [first, ...rest] = [...tops.values()];
      for (const [i, other] of rest.entries()) expect(Array.from(other), `${v.name}: top-1 of ${DEVICE_NAMES[i + 1]} equals webgpu's`).toEqual(Array.from(first as Int32Array));
      // And the model is no mere chance: most of the 256 digits are right.
      const labels = loadMnist().test.labels.subarray(0, subset);
      const right = (first as Int32Array).reduce((n, p, i) => n + (p === labels[i] ? 1 : 0), 0);
      expect(right / subset, `${v.name} top-1 accuracy`).toBeGreaterThan(0.6);
    }
  });

  it('runs every supported operation: strided same-padded conv, average pooling, each activation, no bias, reshape', async () => {
    const model = tfl.sequential({
      layers: [
        tfl.layers.reshape({ inputShape: [144], targetShape: [12, 12, 1] }),
        tfl.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu6' }),
        tfl.layers.averagePooling2d({ poolSize: 2, strides: 1, padding: 'same' }),
        tfl.layers.conv2d({ filters: 5, kernelSize: [2, 3], padding: 'valid', activation: 'elu', useBias: false }),
        tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 9, activation: 'tanh' }),
        tfl.layers.dense({ units: 7, activation: 'sigmoid', useBias: false }),
        tfl.layers.dense({ units: 4 }),
        tfl.layers.activation({ activation: 'softmax' }),
      ],
    });
    const file = join(dir, 'ops.tamp');
    writeFileSync(file, encodeTampModel(int8Tamp(await artifactsOf(model), 'ops')));
    model.dispose();
    const parts = await readModelParts(file);
    const plan = planModel(parts.modelTopology, parts.weights);
    expect(plan.ops.map((o) => o.kind)).toEqual(['conv2d', 'pool', 'conv2d', 'pool', 'dense', 'dense', 'dense', 'activation']);
    const batch = 5;
    const x = Float32Array.from({ length: batch * 144 }, (_, i) => Math.sin(i * 0.37) * 2);
    const reference = runReference(plan, parts.weights, x, batch);
    for (const device of DEVICE_NAMES) {
      const m = await loadModel(file, { device });
      try {
        expectClose((await m.predict(x)).data, reference, 4, `ops model on ${device}`);
      } finally {
        m.dispose();
      }
    }
  });

  it('runs the trained shapes detector (float32 and int8) on every device: decoded boxes equal the float64 reference within 1e-3', async () => {
    // The detector bench:detect trained (test/fixtures/shapes-detector), so its boxes are real, confident detections.
    const fixture = fileURLToPath(new URL('../../../test/fixtures/shapes-detector/model.json', import.meta.url));
    const int8File = join(dir, 'detector-int8.tamp');
    writeFileSync(int8File, encodeTampModel(int8Tamp(readModelArtifacts(fixture), 'shapes-detector')));
    const scenes = 6;
    const per = 96 * 96 * 3;
    const x = new Float32Array(scenes * per);
    for (let i = 0; i < scenes; i++) x.set(Float32Array.from(renderScene(sceneSeed(2026, 'test', i)).pixels, (v) => v / 255), i * per);
    let boxes = 0;
    for (const file of [fixture, int8File]) {
      const parts = await readModelParts(file);
      const plan = planModel(parts.modelTopology, parts.weights);
      const shape = gridOf(plan.outputShape);
      const reference = runReference(plan, parts.weights, x, scenes);
      const expected = decodeGrid(reference, scenes, shape, { scoreThreshold: 0.3 });
      for (const device of DEVICE_NAMES) {
        const m = await loadModel(file, { device });
        try {
          const y = await m.predict(x);
          expectClose(y.data, reference, plan.outputShape.reduce((a, b) => a * b, 1), `detector ${file} on ${device}`);
          const found = decodeGrid(y.data, scenes, shape, { scoreThreshold: 0.3 });
          // detect(): the same pass and decoding in one call.
          expect(await detect(m, x, { scoreThreshold: 0.3 })).toEqual(found);
          for (let n = 0; n < scenes; n++) expect(detectionsDiffer(found[n] as Detection[], expected[n] as Detection[]), `scene ${n}, ${file} on ${device}`).toBeUndefined();
          boxes += found.flat().length;
        } finally {
          m.dispose();
        }
      }
    }
    // Six scenes of one to four shapes each: a trained detector finds most of them on every run.
    expect(boxes / (2 * DEVICE_NAMES.length)).toBeGreaterThanOrEqual(scenes);
  });

  it('splits a batch larger than one pass allows, and takes tensors and number arrays', async () => {
    const v = variants.find((x) => x.name === 'mlp-tiny int8 .tamp') as Variant;
    const whole = await loadModel(v.file, { device: 'webgpu' });
    const all = await whole.predict(digits);
    whole.dispose();
    // 256 digits in passes of at most 100: three passes, the same outputs.
    const m = await loadModel(v.file, { device: 'webgpu', maxBatchPerPass: 100 });
    try {
      expect(Array.from((await m.predict(digits)).data)).toEqual(Array.from(all.data));
      const tensor = tf.tensor(digits, [subset, 784]);
      const fromTensor = await m.predict(tensor);
      tensor.dispose();
      expect(Array.from(fromTensor.data)).toEqual(Array.from(all.data));
      const one = await m.predict(Array.from(digits.subarray(784, 1568)));
      expect(Array.from(one.data)).toEqual(Array.from(all.data.subarray(10, 20)));
      // Concurrent calls are queued, not interleaved.
      const [a, b] = await Promise.all([m.predict(digits.subarray(0, 784 * 3)), m.predict(digits.subarray(784 * 3, 784 * 6))]);
      expect(Array.from(a.data).concat(Array.from(b.data))).toEqual(Array.from(all.data.subarray(0, 60)));
    } finally {
      m.dispose();
    }
  });
});

async function expectError(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelError);
  expect((error as ModelError).code).toBe(code);
  expect((error as ModelError).message).toMatch(message);
}

describe('bad input gets a typed error', () => {
  it('refuses damaged, unsupported and missing model files', async () => {
    const good = readFileSync((variants.find((x) => x.name === 'lenet-5 int8 .tamp') as Variant).file);
    const damaged = Uint8Array.from(good);
    damaged[damaged.length - 10] = (damaged[damaged.length - 10] as number) ^ 0x40;
    await expect(loadModel(damaged, { device: 'cpu' })).rejects.toMatchObject({ code: 'MODEL_INVALID' });
    await expect(loadModel(good.subarray(0, good.length - 100), { device: 'cpu' })).rejects.toBeInstanceOf(ModelError);
    await expect(loadModel(join(dir, 'missing.tamp'))).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
    await expect(loadModel(new TextEncoder().encode('{"not": "a model"}'))).rejects.toMatchObject({ code: 'MODEL_INVALID' });

    const up = tfl.sequential({ layers: [tfl.layers.conv2dTranspose({ inputShape: [4, 4, 1], filters: 2, kernelSize: 2 })] });
    const upFile = join(dir, 'transposed.tamp');
    writeFileSync(upFile, encodeTampModel(int8Tamp(await artifactsOf(up), 'transposed')));
    up.dispose();
    await expectError(loadModel(upFile), 'MODEL_UNSUPPORTED', /is a Conv2DTranspose\. The inference engine runs these layers: .*Conv2D/);

    // A weight whose shape disagrees with its layer.
    const m = decodeTampModel(good);
    const swapped = { ...m, weights: m.weights.map((w, i) => (i === 0 ? { ...w, name: 'x', shape: [5, 5, 20, 1], encoding: { kind: 'f32' as const, data: new Float32Array(500) } } : w)) };
    await expectError(loadModel(encodeTampModel(swapped), { device: 'cpu' }), 'MODEL_INVALID', /kernel "x" has shape \[5,5,20,1\], expected \[5,5,1,20\]/);
  });

  it('refuses inputs of the wrong size or with NaN, on every device', async () => {
    const v = variants.find((x) => x.name === 'lenet-5 int8 .tamp') as Variant;
    for (const device of DEVICE_NAMES) {
      const m = await loadModel(v.file, { device });
      try {
        await expect(m.predict(new Float32Array(783))).rejects.toThrow(/783 values are not a whole number of samples of shape \[28, 28, 1\]/);
        await expect(m.predict(new Float32Array(784).fill(Number.NaN))).rejects.toBeInstanceOf(InvalidArgumentError);
        const wrong = tf.zeros([2, 27, 28, 1]);
        await expect(m.predict(wrong)).rejects.toThrow(/shape \[2, 27, 28, 1\], expected \[N, 28, 28, 1\]/);
        wrong.dispose();
      } finally {
        m.dispose();
      }
    }
  });

  it('auto never takes a software adapter, and says why it passed WebGPU over', async () => {
    const v = variants.find((x) => x.name === 'mlp-tiny int8 .tamp') as Variant;
    const log: string[] = [];
    const m = await loadModel(v.file, { log: (s) => log.push(s) });
    try {
      const info = m.info();
      if (info.device === 'webgpu') expect(info.software, `auto took ${info.adapter}`).toBe(false);
      else expect(log.join('\n')).toMatch(/device webgpu: skipped \(.+\)/);
    } finally {
      m.dispose();
    }
  });
});
