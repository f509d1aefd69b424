/**
 * The depthwise-convolution gradient kernels, and whole MobileNet/ResNet
 * gradients (batch norm in training mode, ReLU6, residual adds, strided
 * convs), on Tamp's WASM path against tfjs's cpu backend. Error measure as
 * in wasm-kernels.test.ts: max |wasm − cpu| / max |cpu|.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { Random } from '../../random.js';
import { computeGradients } from '../../train/classifier.js';
import { mobilenetV2 } from '../../zoo/mobilenet.js';
import { resnet20 } from '../../zoo/resnet.js';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { setTampWasmKernels, tampWasmKernelsEnabled } from './register.js';

const TOLERANCE = 1e-4;

function randomArray(n: number, seed: number): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}

async function on(backend: string, fn: () => tf.Tensor): Promise<Float32Array> {
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
interface DepthwiseCase {
  x: [number, number, number, number];
  /** [kh, kw, C, multiplier] */
  f: [number, number, number, number];
  strides: [number, number];
  pad: Pad;
}

const cases: DepthwiseCase[] = [
  { x: [2, 9, 9, 3], f: [3, 3, 3, 1], strides: [1, 1], pad: 'same' },
  { x: [2, 9, 9, 3], f: [3, 3, 3, 1], strides: [1, 1], pad: 'valid' },
  { x: [2, 10, 10, 4], f: [3, 3, 4, 1], strides: [2, 2], pad: 'same' },
  { x: [2, 9, 11, 4], f: [3, 3, 4, 1], strides: [2, 2], pad: 'valid' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 2], strides: [1, 1], pad: 'same' },
  { x: [2, 9, 9, 3], f: [3, 3, 3, 2], strides: [2, 2], pad: 'valid' },
  { x: [3, 10, 7, 2], f: [5, 3, 2, 2], strides: [2, 3], pad: 'same' },
  { x: [2, 9, 9, 5], f: [3, 3, 5, 1], strides: [2, 2], pad: [[0, 0], [0, 1], [1, 1], [0, 0]] }, // MobileNet's ZeroPadding + valid, as explicit padding
  { x: [8, 16, 16, 24], f: [3, 3, 24, 1], strides: [1, 1], pad: 'same' }, // a MobileNetV2 block
  { x: [2, 10, 11, 5], f: [3, 3, 5, 1], strides: [3, 3], pad: 'valid' }, // stride 3: the input gradient through XNNPACK on dy dilated by 3
  { x: [2, 7, 7, 3], f: [3, 3, 3, 1], strides: [1, 1], pad: [[0, 0], [3, 0], [0, 3], [0, 0]] }, // padding past k − 1: the input gradient's loop, not XNNPACK
];

function label(c: DepthwiseCase): string {
  return `x ${c.x.join('x')}, filter ${c.f.join('x')}, stride ${c.strides.join(',')}, pad ${JSON.stringify(c.pad)}`;
}

beforeAll(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  expect(tampWasmKernelsEnabled()).toBe(true);
});

describe('depthwise convolution gradients on WASM against the cpu backend', () => {
  for (const [n, c] of cases.entries()) {
    const dyShape = () => tf.tidy(() => tf.depthwiseConv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(c.f) as tf.Tensor4D, c.strides, c.pad).shape);

    it(`DepthwiseConv2dNativeBackpropFilter: ${label(c)}`, async () => {
      await tf.setBackend('cpu');
      const dys = dyShape();
      const xv = randomArray(tf.util.sizeFromShape(c.x), 100 + n);
      const dyv = randomArray(tf.util.sizeFromShape(dys), 200 + n);
      const run = () =>
        tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x: tf.tensor(xv, c.x), dy: tf.tensor(dyv, dys) }, {
          strides: c.strides, dilations: 1, pad: c.pad, filterShape: c.f,
        } as never) as tf.Tensor;
      expect(relativeError(await on('wasm', run), await on('cpu', run)), label(c)).toBeLessThanOrEqual(TOLERANCE);
    });

    it(`DepthwiseConv2dNativeBackpropInput: ${label(c)}`, async () => {
      await tf.setBackend('cpu');
      const dys = dyShape();
      const fv = randomArray(tf.util.sizeFromShape(c.f), 300 + n);
      const dyv = randomArray(tf.util.sizeFromShape(dys), 400 + n);
      const run = () =>
        tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy: tf.tensor(dyv, dys), filter: tf.tensor(fv, c.f) }, {
          strides: c.strides, dilations: 1, pad: c.pad, inputShape: c.x,
        } as never) as tf.Tensor;
      expect(relativeError(await on('wasm', run), await on('cpu', run)), label(c)).toBeLessThanOrEqual(TOLERANCE);
    });
  }

  it('tf.grad of a depthwise conv (both operands) matches cpu', async () => {
    const xv = randomArray(2 * 8 * 8 * 4, 7);
    const fv = randomArray(3 * 3 * 4 * 2, 8);
    const loss = (x: tf.Tensor, f: tf.Tensor) => tf.sum(tf.square(tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, 'same')));
    for (const which of [0, 1]) {
      const run = () => tf.grads(loss)([tf.tensor(xv, [2, 8, 8, 4]), tf.tensor(fv, [3, 3, 4, 2])])[which] as tf.Tensor;
      expect(relativeError(await on('wasm', run), await on('cpu', run))).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  const tileCases: Array<{ shape: number[]; reps: number[]; dtype: 'float32' | 'int32' }> = [
    { shape: [1, 1, 1, 5], reps: [3, 4, 2, 1], dtype: 'float32' }, // the batch-norm gradient's tile
    { shape: [2, 3], reps: [2, 3], dtype: 'float32' },
    { shape: [2, 1, 3], reps: [1, 4, 2], dtype: 'int32' },
    { shape: [1, 2, 1, 3], reps: [2, 2, 3, 1], dtype: 'float32' },
    { shape: [4], reps: [3], dtype: 'int32' },
    { shape: [3, 1], reps: [1, 1], dtype: 'float32' },
  ];
  for (const t of tileCases) {
    it(`Tile ${t.shape.join('x')} by ${t.reps.join('x')} (${t.dtype}) matches cpu exactly`, async () => {
      const values = Float32Array.from(randomArray(tf.util.sizeFromShape(t.shape), 500), (v) => (t.dtype === 'int32' ? Math.round(v * 100) : v));
      const run = () => tf.tile(tf.tensor(values, t.shape, t.dtype), t.reps);
      expect(Array.from(await on('wasm', run))).toEqual(Array.from(await on('cpu', run)));
    });
  }

  const models: Array<[string, (seed: number) => LayersModel]> = [
    // Two inverted residual blocks: stride-2 depthwise with ZeroPadding, ReLU6, batch norm, a residual add.
    ['MobileNetV2 0.35, two blocks, 32x32', (seed) => mobilenetV2({ alpha: 0.35, inputSize: 32, blocks: [{ filters: 16, stride: 2, expansion: 1 }, { filters: 16, stride: 1, expansion: 6 }, { filters: 24, stride: 2, expansion: 6 }], seed })],
    // Strided 3x3 convs and 1x1 projections, batch norm, identity and projection shortcuts.
    ['ResNet (one block per stage, width 8), 16x16', (seed) => resnet20({ inputSize: 16, width: 8, blocksPerStage: 1, seed })],
  ];
  for (const [name, create] of models) {
    it(`a whole ${name} gradient in training mode matches cpu`, async () => {
      const r = new Random(5);
      await tf.setBackend('cpu');
      const probe = create(1);
      const size = probe.inputs[0]?.shape[1] as number;
      probe.dispose();
      const batch = { xs: Float32Array.from({ length: 8 * size * size * 3 }, () => r.next()), labels: Int32Array.from({ length: 8 }, () => r.int(10)), size: 8 };
      const grads = async (backend: string) => {
        await tf.setBackend(backend);
        const model = create(9);
        const { loss, grads: g } = await computeGradients(model, batch);
        const out = new Map<string, Float32Array>();
        for (const [k, t] of g) out.set(k, (await t.data()) as Float32Array);
        for (const t of g.values()) t.dispose();
        model.dispose();
        return { loss, grads: out };
      };
      const cpu = await grads('cpu');
      const wasm = await grads('wasm');
      expect(Math.abs(wasm.loss - cpu.loss) / cpu.loss).toBeLessThan(1e-5);
      expect([...wasm.grads.keys()]).toEqual([...cpu.grads.keys()]);
      // A bias or beta whose output only reaches a training-mode batch norm
      // through linear layers has a gradient of exactly 0 in exact arithmetic:
      // both backends give rounding noise there, so those tensors are held to
      // the scale of the whole gradient instead of their own.
      const overall = Math.max(...[...cpu.grads.values()].map((g) => g.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
      for (const [k, g] of cpu.grads) {
        const own = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const got = wasm.grads.get(k) as Float32Array;
        if (own < 1e-4 * overall) {
          expect(got.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / overall, k).toBeLessThan(1e-4);
        } else {
          expect(relativeError(got, g), k).toBeLessThanOrEqual(1e-3);
        }
      }
    });
  }

  it('stock tfjs 4.22 wasm has no depthwise gradient kernels (why Tamp supplies them)', async () => {
    await tf.setBackend('wasm');
    setTampWasmKernels(false);
    try {
      // If these start passing, tfjs added the kernels: compare them before keeping Tamp's.
      expect(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')).toBeUndefined();
      expect(tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'wasm')).toBeUndefined();
    } finally {
      setTampWasmKernels(true);
    }
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'wasm')).toBeDefined();
  });
});
