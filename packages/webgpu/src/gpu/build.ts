/**
 * The fused steps (fuse.ts) as kernels: each weight uploaded once in its
 * packed form (only the weights some kernel reads: a batch norm folded into
 * a convolution leaves its four vectors and the bias on the CPU, replaced by
 * one float32 buffer of per-channel multipliers and offsets), and one or
 * more dispatches per step, each with the tensors it reads and writes.
 */
import { type TampTensor, tensorValues } from '@tamp/compress';
import type { BatchNormOp, Plan } from '../plan.js';
import { fusePlan, isMain, type Step } from './fuse.js';
import { activationKernel } from './kernels/activation.js';
import { addKernel } from './kernels/add.js';
import { batchNormKernel } from './kernels/batchnorm.js';
import type { Kernel } from './kernels/common.js';
import { concatKernels } from './kernels/concat.js';
import { conv2dKernel } from './kernels/conv2d.js';
import { denseKernel } from './kernels/dense.js';
import { depthwiseKernel } from './kernels/depthwise.js';
import type { Epilogue } from './kernels/epilogue.js';
import { globalPoolKernel } from './kernels/global-pool.js';
import { padKernel } from './kernels/pad.js';
import { poolKernel } from './kernels/pool.js';
import { upsampleKernel } from './kernels/upsample.js';
import { BUFFER_USAGE, type GpuMemory } from './memory.js';
import { type GpuWeight, uploadWeight } from './weights.js';

export interface Dispatch {
  readonly kernel: Kernel;
  /** Tensors bound as x, x1, x2, ... */
  readonly inputs: readonly number[];
  readonly output: number;
}

/** Per-channel m and a of y = x·m + a: a batch norm, with a bias (and the bias's own scale) folded into a. */
export function foldedAffine(bn: BatchNormOp, weights: readonly TampTensor[], bias: number | undefined): Float32Array {
  const C = bn.channels;
  const vec = (i: number | undefined) => (i === undefined ? undefined : tensorValues(weights[i] as TampTensor));
  const [gamma, beta, mean, variance, b] = [vec(bn.gamma), vec(bn.beta), vec(bn.mean) as Float32Array, vec(bn.variance) as Float32Array, vec(bias)];
  const out = new Float32Array(2 * C);
  for (let c = 0; c < C; c++) {
    const m = (gamma?.[c] ?? 1) / Math.sqrt((variance[c] as number) + bn.epsilon);
    out[c] = m;
    out[C + c] = ((b?.[c] ?? 0) - (mean[c] as number)) * m + (beta?.[c] ?? 0);
  }
  return out;
}

export function buildDispatches(plan: Plan, tensors: readonly TampTensor[], memory: GpuMemory): { dispatches: Dispatch[]; weights: GpuWeight[] } {
  const uploaded = new Map<number, GpuWeight>();
  const extra: GpuWeight[] = [];
  const weight = (i: number): GpuWeight => {
    let w = uploaded.get(i);
    if (w === undefined) {
      w = uploadWeight(memory, tensors[i] as TampTensor);
      uploaded.set(i, w);
    }
    return w;
  };
  const affine = (step: Step, bn: BatchNormOp, bias: number | undefined): GpuWeight => {
    const data = foldedAffine(bn, tensors, bias);
    const name = `${step.label} (batch norm folded)`;
    const buffer = memory.upload(`${name} f32`, data, BUFFER_USAGE.STORAGE, 'weight');
    const w: GpuWeight = { name, kind: 'f32', data: buffer, aux: undefined, scales: 0, bytes: buffer.size, storage: 'float32 per-channel multiply-add (batch norm and bias folded at load)' };
    extra.push(w);
    return w;
  };
  const dispatches: Dispatch[] = [];
  for (const step of fusePlan(plan)) {
    const op = step.op;
    const one = (kernel: Kernel) => dispatches.push({ kernel, inputs: step.inputs, output: step.output });
    if (isMain(op)) {
      const e: Epilogue = {
        bias: step.bn === undefined && op.bias !== undefined ? weight(op.bias) : undefined,
        affine: step.bn === undefined ? undefined : affine(step, step.bn, op.bias),
        residual: step.residual !== undefined,
        activation: step.activation,
        channels: op.kind === 'dense' ? op.units : op.outShape[2],
      };
      const k = weight(op.kernel);
      if (op.kind === 'dense') one(denseKernel(op, k, e, step.label));
      else if (op.kind === 'conv2d') one(conv2dKernel(step.window === undefined ? op : { ...op, ...step.window }, k, e, step.label));
      else one(depthwiseKernel(step.window === undefined ? op : { ...op, ...step.window }, k, e, step.label));
    } else if (op.kind === 'batchnorm') {
      one(batchNormKernel(op, affine(step, op, undefined), step.activation, step.label));
    } else if (op.kind === 'add') {
      one(addKernel(op, step.activation, step.label));
    } else if (op.kind === 'concat') {
      concatKernels(op).forEach((kernel, i) => dispatches.push({ kernel, inputs: [op.inputs[i] as number], output: op.output }));
    } else if (op.kind === 'pool') one(poolKernel(op));
    else if (op.kind === 'globalpool') one(globalPoolKernel(op));
    else if (op.kind === 'pad') one(padKernel(op));
    else if (op.kind === 'upsample') one(upsampleKernel(op));
    else one(activationKernel(op));
  }
  return { dispatches, weights: [...uploaded.entries()].sort((a, b) => a[0] - b[0]).map(([, w]) => w).concat(extra) };
}
