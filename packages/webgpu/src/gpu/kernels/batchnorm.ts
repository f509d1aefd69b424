/** A batch norm that follows no convolution or dense layer: y = act(x·m_c + a_c), m and a worked out at load (float32 [m, a]). */
import type { BatchNormOp, Elementwise } from '../../plan.js';
import type { GpuWeight } from '../weights.js';
import { type Kernel, activationWgsl, entry, firstWeight, header, u } from './common.js';

export function batchNormKernel(op: BatchNormOp, affine: GpuWeight, activation: Elementwise, label = op.name): Kernel {
  const code = `${header()}
@group(0) @binding(${firstWeight()}) var<storage, read> aff: array<f32>;
const CH: u32 = ${u(op.channels)};
${entry()}
  let c = idx % CH;
  let v = x[idx] * aff[c] + aff[CH + c];
  y[idx] = ${activationWgsl(activation, 'v')};
}`;
  return { label, code, weights: [affine], threads: (batch) => batch * op.size };
}
