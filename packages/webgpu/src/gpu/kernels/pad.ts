/** ZeroPadding2D that no convolution could take as its padding: one thread per output element, zero outside the input. */
import type { PadOp } from '../../plan.js';
import { type Kernel, entry, header, u } from './common.js';

export function padKernel(op: PadOp): Kernel {
  const [H, W, C] = op.inShape;
  const [OH, OW] = op.outShape;
  const code = `${header()}
const H: i32 = ${H}; const W: i32 = ${W}; const C: u32 = ${u(C)};
const OH: u32 = ${u(OH)}; const OW: u32 = ${u(OW)};
const PT: i32 = ${op.padTop}; const PL: i32 = ${op.padLeft};
${entry()}
  let c = idx % C;
  var t = idx / C;
  let ix = i32(t % OW) - PL;
  t = t / OW;
  let iy = i32(t % OH) - PT;
  let n = t / OH;
  var v = 0.0;
  if (iy >= 0 && iy < H && ix >= 0 && ix < W) { v = x[((n * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C + c]; }
  y[idx] = v;
}`;
  return { label: op.name, code, weights: [], threads: (batch) => batch * OH * OW * C };
}
