/** Max and average pooling, NHWC; padded positions are left out (of the max, and of the average's count, as TensorFlow does). */
import type { PoolOp } from '../../plan.js';
import { type Kernel, entry, header, u } from './common.js';

export function poolKernel(op: PoolOp): Kernel {
  const [H, W, C] = op.inShape;
  const [OH, OW] = op.outShape;
  const max = op.mode === 'max';
  const code = `${header()}
const H: i32 = ${H}; const W: i32 = ${W}; const C: u32 = ${u(C)};
const OH: u32 = ${u(OH)}; const OW: u32 = ${u(OW)};
const PH: i32 = ${op.poolSize[0]}; const PW: i32 = ${op.poolSize[1]};
const SH: i32 = ${op.strides[0]}; const SW: i32 = ${op.strides[1]};
const PT: i32 = ${op.padTop}; const PL: i32 = ${op.padLeft};
${entry()}
  let c = idx % C;
  var t = idx / C;
  let ox = i32(t % OW);
  t = t / OW;
  let oy = i32(t % OH);
  let n = t / OH;
  var best = -3.4028234e38;
  var sum = 0.0;
  var count = 0.0;
  for (var py = 0; py < PH; py = py + 1) {
    let iy = oy * SH - PT + py;
    if (iy < 0 || iy >= H) { continue; }
    for (var px = 0; px < PW; px = px + 1) {
      let ix = ox * SW - PL + px;
      if (ix < 0 || ix >= W) { continue; }
      let v = x[((n * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C + c];
      best = max(best, v);
      sum = sum + v;
      count = count + 1.0;
    }
  }
  y[idx] = ${max ? 'best' : 'sum / count'};
}`;
  return { label: op.name, code, weights: [], threads: (batch) => batch * OH * OW * C };
}
