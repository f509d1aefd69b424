/** UpSampling2D, nearest: output pixel (oy, ox) copies input pixel (oy / sh, ox / sw). */
import type { UpsampleOp } from '../../plan.js';
import { type Kernel, entry, header, u } from './common.js';

export function upsampleKernel(op: UpsampleOp): Kernel {
  const [H, W, C] = op.inShape;
  const [OH, OW] = op.outShape;
  const code = `${header()}
const H: u32 = ${u(H)}; const W: u32 = ${u(W)}; const C: u32 = ${u(C)};
const OH: u32 = ${u(OH)}; const OW: u32 = ${u(OW)}; const SH: u32 = ${u(OH / H)}; const SW: u32 = ${u(OW / W)};
${entry()}
  let c = idx % C;
  var t = idx / C;
  let ox = t % OW;
  t = t / OW;
  let oy = t % OH;
  let n = t / OH;
  y[idx] = x[((n * H + oy / SH) * W + ox / SW) * C + c];
}`;
  return { label: op.name, code, weights: [], threads: (batch) => batch * OH * OW * C };
}
