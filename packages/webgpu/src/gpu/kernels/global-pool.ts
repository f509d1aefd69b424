/** Global average and max pooling, NHWC to one value per channel: one thread per (sample, channel), reading every position. */
import type { GlobalPoolOp } from '../../plan.js';
import { type Kernel, entry, header, u } from './common.js';

export function globalPoolKernel(op: GlobalPoolOp): Kernel {
  const [H, W, C] = op.inShape;
  const max = op.mode === 'max';
  const code = `${header()}
const P: u32 = ${u(H * W)}; const C: u32 = ${u(C)};
${entry()}
  let c = idx % C;
  let base = (idx / C) * P * C + c;
  var best = -3.4028234e38;
  var sum = 0.0;
  for (var p = 0u; p < P; p = p + 1u) {
    let v = x[base + p * C];
    best = max(best, v);
    sum = sum + v;
  }
  y[idx] = ${max ? 'best' : `sum / ${(H * W).toFixed(1)}`};
}`;
  return { label: op.name, code, weights: [], threads: (batch) => batch * C };
}
