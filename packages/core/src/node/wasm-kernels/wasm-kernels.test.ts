/**
 * Each Tamp WASM kernel against tfjs's cpu backend on random inputs of
 * several shapes, strides and paddings, and a whole LeNet-5 gradient.
 * Error measure: max |wasm − cpu| / max |cpu| over the tensor (elementwise
 * relative error is meaningless for entries near zero).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { Random } from '../../random.js';
import { createModel } from '../../zoo/zoo.js';
import { computeGradients } from '../../train/classifier.js';
import { stockKernel } from './compose.js';
import { setTampWasmKernels, tampWasmKernelsEnabled } from './register.js';

const TOLERANCE = 1e-4;

function randomArray(n: number, seed: number): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}

async function on<T extends tf.Tensor>(backend: string, fn: () => T): Promise<Float32Array> {
  await tf.setBackend(backend);
  const t = fn();
  const data = (await t.data()) as Float32Array;
  t.dispose();
  return data;
}

function relativeError(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs((a[i] as number) - (b[i] as number)));
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  return diff / Math.max(scale, 1e-12);
}

type Pad = 'valid' | 'same' | [[number, number], [number, number], [number, number], [number, number]];
interface ConvCase {
  x: [number, number, number, number];
  f: [number, number, number, number];
  strides: [number, number];
  pad: Pad;
}

const convCases: ConvCase[] = [
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: [1, 1], pad: 'valid' },
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: [1, 1], pad: 'same' },
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: [2, 2], pad: 'valid' },
  { x: [2, 10, 9, 3], f: [3, 3, 3, 4], strides: [2, 2], pad: 'same' },
  { x: [2, 10, 7, 2], f: [3, 2, 2, 3], strides: [2, 3], pad: 'same' },
  { x: [3, 11, 8, 2], f: [4, 3, 2, 5], strides: [3, 2], pad: 'valid' },
  { x: [2, 8, 8, 2], f: [3, 3, 2, 3], strides: [1, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [4, 28, 28, 1], f: [5, 5, 1, 20], strides: [1, 1], pad: 'valid' }, // LeNet-5 conv1
  { x: [4, 12, 12, 20], f: [5, 5, 20, 50], strides: [1, 1], pad: 'valid' }, // LeNet-5 conv2
  { x: [3, 6, 5, 8], f: [1, 1, 8, 12], strides: [1, 1], pad: 'same' }, // pointwise: the filter gradient's product path
  { x: [2, 7, 7, 12], f: [1, 1, 12, 4], strides: [1, 1], pad: 'valid' },
  { x: [2, 7, 7, 6], f: [1, 1, 6, 5], strides: [2, 2], pad: 'same' }, // 1x1 at stride 2: still the convolution path
];

function label(c: ConvCase): string {
  return `x ${c.x.join('x')}, filter ${c.f.join('x')}, stride ${c.strides.join(',')}, pad ${JSON.stringify(c.pad)}`;
}

function outShape(c: ConvCase): number[] {
  return tf.tidy(() => tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(c.f) as tf.Tensor4D, c.strides, c.pad).shape);
}

beforeAll(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  expect(tampWasmKernelsEnabled()).toBe(true);
});

describe('Tamp WASM kernels against the cpu backend', () => {
  for (const [n, c] of convCases.entries()) {
    it(`Conv2DBackpropFilter: ${label(c)}`, async () => {
      await tf.setBackend('cpu');
      const dyShape = outShape(c);
      const xv = randomArray(tf.util.sizeFromShape(c.x), 10 + n);
      const dyv = randomArray(tf.util.sizeFromShape(dyShape), 20 + n);
      const run = () =>
        tf.engine().runKernel('Conv2DBackpropFilter', { x: tf.tensor(xv, c.x), dy: tf.tensor(dyv, dyShape) }, {
          strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: c.f,
        } as never) as tf.Tensor;
      const expected = await on('cpu', run);
      const got = await on('wasm', run);
      expect(relativeError(got, expected), label(c)).toBeLessThanOrEqual(TOLERANCE);
    });

    it(`Conv2DBackpropInput: ${label(c)}`, async () => {
      await tf.setBackend('cpu');
      const dyShape = outShape(c);
      const fv = randomArray(tf.util.sizeFromShape(c.f), 30 + n);
      const dyv = randomArray(tf.util.sizeFromShape(dyShape), 40 + n);
      const run = () =>
        tf.engine().runKernel('Conv2DBackpropInput', { dy: tf.tensor(dyv, dyShape), filter: tf.tensor(fv, c.f) }, {
          strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x,
        } as never) as tf.Tensor;
      const expected = await on('cpu', run);
      const got = await on('wasm', run);
      expect(relativeError(got, expected), label(c)).toBeLessThanOrEqual(TOLERANCE);
    });
  }

  const poolCases: Array<{ x: [number, number, number, number]; size: [number, number]; strides: [number, number]; pad: 'valid' | 'same' }> = [
    { x: [2, 8, 8, 3], size: [2, 2], strides: [2, 2], pad: 'valid' },
    { x: [3, 9, 7, 4], size: [3, 3], strides: [2, 2], pad: 'same' },
    { x: [2, 7, 7, 5], size: [3, 2], strides: [1, 2], pad: 'valid' },
    { x: [16, 24, 24, 20], size: [2, 2], strides: [2, 2], pad: 'valid' },
  ];
  for (const [n, p] of poolCases.entries()) {
    it(`MaxPoolGrad: x ${p.x.join('x')}, window ${p.size.join('x')}, stride ${p.strides.join(',')}, pad ${p.pad} (all-negative windows and ties included)`, async () => {
      // Mostly negative values (the stock kernel's failure) and rounded ones (ties).
      const xv = randomArray(tf.util.sizeFromShape(p.x), 90 + n).map((v) => Math.round((v - 1.5) * 4) / 4);
      const dyShape = tf.tidy(() => tf.maxPool(tf.zeros(p.x) as tf.Tensor4D, p.size, p.strides, p.pad).shape);
      const dyv = randomArray(tf.util.sizeFromShape(dyShape), 95 + n);
      const run = () => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, p.size, p.strides, p.pad), tf.tensor(dyv, dyShape))))(tf.tensor(xv, p.x));
      // Same argmax positions as cpu; overlapping windows only add in another order.
      expect(relativeError(await on('wasm', run), await on('cpu', run))).toBeLessThanOrEqual(1e-6);
    });
  }

  it('Conv2DBackpropFilter with NCHW data', async () => {
    const x: [number, number, number, number] = [2, 3, 9, 8];
    const f: [number, number, number, number] = [3, 3, 3, 4];
    const dyShape = [2, 4, 7, 6];
    const xv = randomArray(tf.util.sizeFromShape(x), 50);
    const dyv = randomArray(tf.util.sizeFromShape(dyShape), 51);
    const run = () =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x: tf.tensor(xv, x), dy: tf.tensor(dyv, dyShape) }, {
        strides: [1, 1], pad: 'valid', dataFormat: 'NCHW', filterShape: f,
      } as never) as tf.Tensor;
    expect(relativeError(await on('wasm', run), await on('cpu', run))).toBeLessThanOrEqual(TOLERANCE);
  });

  const matmulCases: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = [
    { a: [5, 7], b: [9, 7], ta: false, tb: true },
    { a: [7, 5], b: [7, 9], ta: true, tb: false },
    { a: [7, 5], b: [9, 7], ta: true, tb: true },
    { a: [64, 300], b: [100, 300], ta: false, tb: true },
    { a: [2, 4, 3], b: [2, 5, 3], ta: false, tb: true },
  ];
  for (const [n, m] of matmulCases.entries()) {
    it(`BatchMatMul ${m.a.join('x')}${m.ta ? 'ᵀ' : ''} · ${m.b.join('x')}${m.tb ? 'ᵀ' : ''}`, async () => {
      const av = randomArray(tf.util.sizeFromShape(m.a), 60 + n);
      const bv = randomArray(tf.util.sizeFromShape(m.b), 70 + n);
      const run = () => tf.matMul(tf.tensor(av, m.a), tf.tensor(bv, m.b), m.ta, m.tb);
      expect(relativeError(await on('wasm', run), await on('cpu', run))).toBeLessThanOrEqual(TOLERANCE);
    });
  }

  it('_FusedMatMul with a transposed operand, bias and relu', async () => {
    const av = randomArray(6 * 8, 80);
    const bv = randomArray(5 * 8, 81);
    const biasv = randomArray(5, 82);
    const run = () => tf.fused.matMul({ a: tf.tensor(av, [6, 8]), b: tf.tensor(bv, [5, 8]), transposeB: true, bias: tf.tensor(biasv, [5]), activation: 'relu' });
    expect(relativeError(await on('wasm', run), await on('cpu', run))).toBeLessThanOrEqual(TOLERANCE);
  });

  it('a whole LeNet-5 gradient matches cpu', async () => {
    const r = new Random(5);
    const batch = { xs: Float32Array.from({ length: 16 * 784 }, () => r.next()), labels: Int32Array.from({ length: 16 }, () => r.int(10)), size: 16 };
    const grads = async (backend: string) => {
      await tf.setBackend(backend);
      const model = createModel('lenet-5', { seed: 9 });
      const { loss, grads: g } = await computeGradients(model, batch);
      const out = new Map<string, Float32Array>();
      for (const [name, t] of g) out.set(name, (await t.data()) as Float32Array);
      for (const t of g.values()) t.dispose();
      model.dispose();
      return { loss, grads: out };
    };
    const cpu = await grads('cpu');
    const wasm = await grads('wasm');
    expect(Math.abs(wasm.loss - cpu.loss) / cpu.loss).toBeLessThan(1e-5);
    expect([...wasm.grads.keys()]).toEqual([...cpu.grads.keys()]);
    for (const [name, g] of cpu.grads) {
      expect(relativeError(wasm.grads.get(name) as Float32Array, g), name).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  it('stock tfjs 4.22 MaxPoolGrad loses the gradient of all-negative windows (why Tamp replaces it)', async () => {
    await tf.setBackend('wasm');
    const stock = stockKernel('MaxPoolGrad');
    expect(stock).toBeDefined();
    const x = tf.tensor4d([-4, -1, -3, -2], [1, 2, 2, 1]);
    const dy = tf.tensor4d([1], [1, 1, 1, 1]);
    const attrs = { filterSize: 2, strides: 2, pad: 'valid' };
    const ours = tf.engine().runKernel('MaxPoolGrad', { dy, input: x }, attrs as never) as tf.Tensor;
    expect(Array.from(await ours.data())).toEqual([0, 1, 0, 0]);
    tf.unregisterKernel('MaxPoolGrad', 'wasm');
    tf.registerKernel(stock as tf.KernelConfig);
    try {
      const theirs = tf.engine().runKernel('MaxPoolGrad', { dy, input: x }, attrs as never) as tf.Tensor;
      // If this starts failing, tfjs fixed the kernel: drop Tamp's replacement.
      expect(Array.from(await theirs.data())).not.toEqual([0, 1, 0, 0]);
    } finally {
      setTampWasmKernels(false);
      setTampWasmKernels(true);
    }
  });

  it('Identity shares the buffer: no copy, the clone outlives its source, strings still clone, nothing leaks', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as { dataIdMap: { has(id: object): boolean; get(id: object): { memoryOffset: number; refCount: number } | undefined } };
    const start = tf.memory().numBytes;
    const x = tf.tensor1d([1, -2, 3.5]);
    const y = tf.clone(x); // Engine.clone runs the Identity kernel, as saving a tensor for the backward pass does
    expect(y.dataId).toBe(x.dataId);
    expect(backend.dataIdMap.get(x.dataId)?.refCount).toBe(2);
    x.dispose();
    expect(Array.from(await y.data())).toEqual([1, -2, 3.5]);
    y.dispose();
    expect(backend.dataIdMap.has(x.dataId)).toBe(false);
    const source = tf.tensor1d(['a', 'b'], 'string');
    const s = tf.clone(source);
    expect(await s.data()).toEqual(['a', 'b']);
    tf.dispose([source, s]);
    // A training step through many saved-for-backward clones leaves no tensors or bytes behind.
    const model = createModel('lenet-5', { seed: 2 });
    const tensors = tf.memory().numTensors;
    const r = new Random(3);
    const batch = { xs: Float32Array.from({ length: 2 * 784 }, () => r.next()), labels: new Int32Array([3, 7]), size: 2 };
    const g = await computeGradients(model, batch);
    for (const t of g.grads.values()) t.dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    model.dispose();
    expect(tf.memory().numBytes).toBe(start);
  });

  it('stock kernels come back when Tamp kernels are turned off', async () => {
    await tf.setBackend('wasm');
    setTampWasmKernels(false);
    try {
      expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
      const y = tf.matMul(tf.ones([2, 3]), tf.ones([4, 3]), false, true);
      expect(Array.from(await y.data())).toEqual(new Array<number>(8).fill(3));
    } finally {
      setTampWasmKernels(true);
    }
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
  });
});
