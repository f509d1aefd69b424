/** Dense layer: y[n, j] = act(scale_j × Σ_i x[n, i] q[i, j] + bias_j), the kernel read packed (int8 or shared) or float32. */
import type { DenseOp } from '../../plan.js';
import { type GpuWeight, weightWgsl } from '../weights.js';
import { type Kernel, activationWgsl, entry, header, u } from './common.js';

export function denseKernel(op: DenseOp, kernel: GpuWeight, bias: GpuWeight | undefined): Kernel {
  const k = weightWgsl(kernel, 'k', 3);
  const b = bias === undefined ? undefined : weightWgsl(bias, 'b', 3 + k.bindings);
  const code = `${header()}
${k.code}
${b?.code ?? ''}
const IN: u32 = ${u(op.inFeatures)};
const UNITS: u32 = ${u(op.units)};
${entry()}
  let n = idx / UNITS;
  let j = idx % UNITS;
  let row = n * IN;
  var acc = 0.0;
  for (var i = 0u; i < IN; i = i + 1u) {
    acc = acc + x[row + i] * k_q(i * UNITS + j);
  }
  var v = acc * k_scale(j)${b === undefined ? '' : ' + b_q(j) * b_scale(j)'};
  y[idx] = ${activationWgsl(op.activation, 'v')};
}`;
  return { label: op.name, code, weights: [kernel, bias], threads: (batch) => batch * op.units };
}
