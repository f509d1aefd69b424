/**
 * A float64 reference of a plan: the same operations as the WGSL kernels,
 * written plainly in JavaScript over dequantized weights. The conformance
 * tests hold every device to it; it is far too slow for anything else.
 */
import { type TampTensor, tensorValues } from '@tamp/compress';
import type { BatchNormOp, ConcatOp, Conv2dOp, DenseOp, DepthwiseOp, Elementwise, GlobalPoolOp, Op, PadOp, Plan, PoolOp, UpsampleOp } from './plan.js';

function activate(v: number, a: Elementwise): number {
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
  if (op.activation !== 'softmax') return x.map((v) => activate(v, op.activation as Elementwise));
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

function depthwise(op: DepthwiseOp, x: Float64Array, batch: number, w: readonly Float64Array[]): Float64Array {
  const [H, W, C] = op.inShape;
  const [OH, OW, F] = op.outShape;
  const [KH, KW] = op.kernelSize;
  const M = op.multiplier;
  const k = w[op.kernel] as Float64Array;
  const b = op.bias === undefined ? undefined : (w[op.bias] as Float64Array);
  const out = new Float64Array(batch * OH * OW * F);
  for (let n = 0; n < batch; n++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        for (let f = 0; f < F; f++) {
          const c = Math.floor(f / M);
          let acc = 0;
          for (let ky = 0; ky < KH; ky++) {
            const iy = oy * op.strides[0] - op.padTop + ky;
            if (iy < 0 || iy >= H) continue;
            for (let kx = 0; kx < KW; kx++) {
              const ix = ox * op.strides[1] - op.padLeft + kx;
              if (ix < 0 || ix >= W) continue;
              acc += (x[((n * H + iy) * W + ix) * C + c] as number) * (k[(ky * KW + kx) * F + f] as number);
            }
          }
          out[((n * OH + oy) * OW + ox) * F + f] = activate(acc + (b?.[f] ?? 0), op.activation);
        }
      }
    }
  }
  return out;
}

function globalPool(op: GlobalPoolOp, x: Float64Array, batch: number): Float64Array {
  const [H, W, C] = op.inShape;
  const out = new Float64Array(batch * C);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < C; c++) {
      let best = -Infinity;
      let sum = 0;
      for (let p = 0; p < H * W; p++) {
        const v = x[(n * H * W + p) * C + c] as number;
        best = Math.max(best, v);
        sum += v;
      }
      out[n * C + c] = op.mode === 'max' ? best : sum / (H * W);
    }
  }
  return out;
}

function batchNorm(op: BatchNormOp, x: Float64Array, w: readonly Float64Array[]): Float64Array {
  const C = op.channels;
  const at = (i: number | undefined, c: number, missing: number) => (i === undefined ? missing : ((w[i] as Float64Array)[c] as number));
  return x.map((v, i) => {
    const c = i % C;
    return (at(op.gamma, c, 1) * (v - at(op.mean, c, 0))) / Math.sqrt(at(op.variance, c, 1) + op.epsilon) + at(op.beta, c, 0);
  });
}

function add(xs: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(xs[0]?.length ?? 0);
  for (const x of xs) for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + (x[i] as number);
  return out;
}

function concat(op: ConcatOp, xs: readonly Float64Array[], batch: number): Float64Array {
  const row = op.widths.reduce((a, b) => a + b, 0);
  const rows = batch * op.outer;
  const out = new Float64Array(rows * row);
  let offset = 0;
  op.widths.forEach((width, i) => {
    const x = xs[i] as Float64Array;
    for (let r = 0; r < rows; r++) out.set(x.subarray(r * width, (r + 1) * width), r * row + offset);
    offset += width;
  });
  return out;
}

function pad(op: PadOp, x: Float64Array, batch: number): Float64Array {
  const [H, W, C] = op.inShape;
  const [OH, OW] = op.outShape;
  const out = new Float64Array(batch * OH * OW * C);
  for (let n = 0; n < batch; n++) {
    for (let y = 0; y < H; y++) {
      for (let xx = 0; xx < W; xx++) {
        const from = ((n * H + y) * W + xx) * C;
        out.set(x.subarray(from, from + C), ((n * OH + y + op.padTop) * OW + xx + op.padLeft) * C);
      }
    }
  }
  return out;
}

function upsample(op: UpsampleOp, x: Float64Array, batch: number): Float64Array {
  const [H, W, C] = op.inShape;
  const [OH, OW] = op.outShape;
  const out = new Float64Array(batch * OH * OW * C);
  for (let n = 0; n < batch; n++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        const from = ((n * H + Math.floor((oy * H) / OH)) * W + Math.floor((ox * W) / OW)) * C;
        out.set(x.subarray(from, from + C), ((n * OH + oy) * OW + ox) * C);
      }
    }
  }
  return out;
}

function run(op: Op, xs: readonly Float64Array[], batch: number, w: readonly Float64Array[]): Float64Array {
  const x = xs[0] as Float64Array;
  switch (op.kind) {
    case 'dense':
      return dense(op, x, batch, w);
    case 'conv2d':
      return conv2d(op, x, batch, w);
    case 'depthwise':
      return depthwise(op, x, batch, w);
    case 'pool':
      return pool(op, x, batch);
    case 'globalpool':
      return globalPool(op, x, batch);
    case 'activation':
      return activation(op, x);
    case 'batchnorm':
      return batchNorm(op, x, w);
    case 'add':
      return add(xs);
    case 'concat':
      return concat(op, xs, batch);
    case 'pad':
      return pad(op, x, batch);
    case 'upsample':
      return upsample(op, x, batch);
  }
}

/** Run a plan in float64 on `batch` samples. */
export function runReference(plan: Plan, weights: readonly TampTensor[], input: ArrayLike<number>, batch: number): Float64Array {
  const w = weights.map((t) => Float64Array.from(tensorValues(t)));
  const tensors = new Map<number, Float64Array>([[0, Float64Array.from(input)]]);
  for (const op of plan.ops) tensors.set(op.output, run(op, op.inputs.map((i) => tensors.get(i) as Float64Array), batch, w));
  return tensors.get(plan.output) as Float64Array;
}
