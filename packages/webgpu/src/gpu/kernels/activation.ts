/** A standalone activation: elementwise, or softmax over the last axis (one thread per row, max subtracted first). */
import type { ActivationOp } from '../../plan.js';
import { type Kernel, activationWgsl, entry, header, u } from './common.js';

export function activationKernel(op: ActivationOp): Kernel {
  if (op.activation !== 'softmax') {
    const code = `${header()}
${entry()}
  let v = x[idx];
  y[idx] = ${activationWgsl(op.activation, 'v')};
}`;
    return { label: op.name, code, weights: [], threads: (batch) => batch * op.size };
  }
  const code = `${header()}
const D: u32 = ${u(op.lastDim)};
${entry()}
  let o = idx * D;
  var m = x[o];
  for (var i = 1u; i < D; i = i + 1u) { m = max(m, x[o + i]); }
  var s = 0.0;
  for (var i = 0u; i < D; i = i + 1u) { s = s + exp(x[o + i] - m); }
  for (var i = 0u; i < D; i = i + 1u) { y[o + i] = exp(x[o + i] - m) / s; }
}`;
  return { label: op.name, code, weights: [], threads: (batch) => (batch * op.size) / op.lastDim };
}
