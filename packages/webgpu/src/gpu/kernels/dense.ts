/** Dense layer: y[n, j] = act(scale_j × Σ_i x[n, i] q[i, j] + bias_j) (or a folded batch norm), the kernel read packed (int8 or shared) or float32. */
import type { DenseOp } from '../../plan.js';
import { type GpuWeight, weightWgsl } from '../weights.js';
import { type Kernel, entry, firstWeight, header, u } from './common.js';
import { type Epilogue, epilogueWgsl } from './epilogue.js';

export function denseKernel(op: DenseOp, kernel: GpuWeight, e: Epilogue, label = op.name): Kernel {
  const k = weightWgsl(kernel, 'k', firstWeight());
  const tail = epilogueWgsl({ ...e, residual: false }, firstWeight() + k.bindings, 1);
  const code = `${header()}
${k.code}
${tail.code}
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
${tail.finish('acc * k_scale(j)', 'j', 'idx')}
}`;
  return { label, code, weights: [kernel, ...tail.weights], threads: (batch) => batch * op.units };
}
