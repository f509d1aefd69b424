/** Elementwise sum of equal shapes (an Add no convolution could take as its residual), activation fused. */
import type { AddOp, Elementwise } from '../../plan.js';
import { type Kernel, activationWgsl, entry, header } from './common.js';

export function addKernel(op: AddOp, activation: Elementwise, label = op.name): Kernel {
  const n = op.inputs.length;
  const sum = ['x[idx]', ...Array.from({ length: n - 1 }, (_, i) => `x${i + 1}[idx]`)].join(' + ');
  const code = `${header(n)}
${entry()}
  let v = ${sum};
  y[idx] = ${activationWgsl(activation, 'v')};
}`;
  return { label, code, weights: [], inputs: n, threads: (batch) => batch * op.size };
}
