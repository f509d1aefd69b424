/**
 * A float64 reference of a plan: the same operations as the WGSL kernels,
 * written plainly in JavaScript over dequantized weights. The conformance
 * tests hold every device to it; it is far too slow for anything else.
 */
import { type TampTensor, tensorValues } from '@tamp/compress';
import type { Activation, Conv2dOp, DenseOp, Op, Plan, PoolOp } from './plan.js';

function activate(v: number, a: Exclude<Activation, 'softmax'>): number {
  switch (a) {
    case 'linear':
      return v;
    case 'relu':
      return Math.max(0, v);
    case 'relu6':
      return Math.min(6, Math.max(0, v));
    case 'sigmoid':
      return 1 / (1 + Math.exp(-v));
    case 'tanh':
      return Math.tanh(v);
    case 'elu':
      return v > 0 ? v : Math.exp(v) - 1;
  }
}

function dense(op: DenseOp, x: Float64Array, batch: number, w: readonly Float64Array[]): Float64Array {
  const k = w[op.kernel] as Float64Array;
  const b = op.bias === undefined ? undefined : (w[op.bias] as Float64Array);
  const out = new Float64Array(batch * op.units);
  for (let n = 0; n < batch; n++) {
    for (let j = 0; j < op.units; j++) {
      let acc = 0;
      for (let i = 0; i < op.inFeatures; i++) acc += (x[n * op.inFeatures + i] as number) * (k[i * op.units + j] as number);
      out[n * op.units + j] = activate(acc + (b?.[j] ?? 0), op.activation);
    }
  }
  return out;
}

function conv2d(op: Conv2dOp, x: Float64Array, batch: number, w: readonly Float64Array[]): Float64Array {
  const [H, W, C] = op.inShape;
  const [OH, OW, F] = op.outShape;
  const [KH, KW] = op.kernelSize;
  const k = w[op.kernel] as Float64Array;
  const b = op.bias === undefined ? undefined : (w[op.bias] as Float64Array);
  const out = new Float64Array(batch * OH * OW * F);
  for (let n = 0; n < batch; n++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        for (let f = 0; f < F; f++) {
          let acc = 0;
          for (let ky = 0; ky < KH; ky++) {
            const iy = oy * op.strides[0] - op.padTop + ky;
            if (iy < 0 || iy >= H) continue;
            for (let kx = 0; kx < KW; kx++) {
              const ix = ox * op.strides[1] - op.padLeft + kx;
              if (ix < 0 || ix >= W) continue;
              for (let c = 0; c < C; c++) acc += (x[((n * H + iy) * W + ix) * C + c] as number) * (k[((ky * KW + kx) * C + c) * F + f] as number);
            }
          }
          out[((n * OH + oy) * OW + ox) * F + f] = activate(acc + (b?.[f] ?? 0), op.activation);
        }
      }
    }
  }
  return out;
}

function pool(op: PoolOp, x: Float64Array, batch: number): Float64Array {
  const [H, W, C] = op.inShape;
  const [OH, OW] = op.outShape;
  const out = new Float64Array(batch * OH * OW * C);
  for (let n = 0; n < batch; n++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        for (let c = 0; c < C; c++) {
          let best = -Infinity;
          let sum = 0;
          let count = 0;
          for (let py = 0; py < op.poolSize[0]; py++) {
            const iy = oy * op.strides[0] - op.padTop + py;
            if (iy < 0 || iy >= H) continue;
            for (let px = 0; px < op.poolSize[1]; px++) {
              const ix = ox * op.strides[1] - op.padLeft + px;
              if (ix < 0 || ix >= W) continue;
              const v = x[((n * H + iy) * W + ix) * C + c] as number;
              best = Math.max(best, v);
              sum += v;
              count++;
            }
          }
          out[((n * OH + oy) * OW + ox) * C + c] = op.mode === 'max' ? best : sum / count;
        }
      }
    }
  }
  return out;
}

function activation(op: Extract<Op, { kind: 'activation' }>, x: Float64Array): Float64Array {
  if (op.activation !== 'softmax') return x.map((v) => activate(v, op.activation as Exclude<Activation, 'softmax'>));
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length; r += op.lastDim) {
    let max = -Infinity;
    for (let i = 0; i < op.lastDim; i++) max = Math.max(max, x[r + i] as number);
    let sum = 0;
    for (let i = 0; i < op.lastDim; i++) sum += Math.exp((x[r + i] as number) - max);
    for (let i = 0; i < op.lastDim; i++) out[r + i] = Math.exp((x[r + i] as number) - max) / sum;
  }
  return out;
}

/** Run a plan in float64 on `batch` samples. */
export function runReference(plan: Plan, weights: readonly TampTensor[], input: ArrayLike<number>, batch: number): Float64Array {
  const w = weights.map((t) => Float64Array.from(tensorValues(t)));
  let x: Float64Array = Float64Array.from(input);
  for (const op of plan.ops) {
    if (op.kind === 'dense') x = dense(op, x, batch, w);
    else if (op.kind === 'conv2d') x = conv2d(op, x, batch, w);
    else if (op.kind === 'pool') x = pool(op, x, batch);
    else x = activation(op, x);
  }
  return x;
}
