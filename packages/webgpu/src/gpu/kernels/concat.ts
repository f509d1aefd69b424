/**
 * Concatenation as one dispatch per input, each copying its slice of every
 * row of the output (any number of inputs, no binding per input; WebGPU
 * orders the dispatches of a pass, so the output is whole when read).
 */
import type { ConcatOp } from '../../plan.js';
import { type Kernel, entry, header, u } from './common.js';

export function concatKernels(op: ConcatOp): Kernel[] {
  const row = op.widths.reduce((a, b) => a + b, 0);
  let offset = 0;
  return op.widths.map((width, i) => {
    const code = `${header()}
const WIDTH: u32 = ${u(width)}; const ROW: u32 = ${u(row)}; const OFFSET: u32 = ${u(offset)};
${entry()}
  y[(idx / WIDTH) * ROW + OFFSET + idx % WIDTH] = x[idx];
}`;
    offset += width;
    return { label: `${op.name} (input ${i + 1})`, code, weights: [], threads: (batch: number) => batch * op.outer * width };
  });
}
