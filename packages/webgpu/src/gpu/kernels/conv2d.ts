/**
 * 2-D convolution, NHWC, kernel [kh, kw, in, out], any stride, valid or
 * same padding (plus a folded ZeroPadding2D), with the epilogue (bias or
 * folded batch norm, residual, activation) in the same dispatch.
 * When the output channels are a multiple of 4 each thread computes four
 * consecutive channels of one output pixel: one load of the input value
 * serves four multiply-adds, and four int8 weights (consecutive in the
 * kernel's last axis) arrive in one 32-bit word. Otherwise one thread per
 * output element.
 */
import type { Conv2dOp } from '../../plan.js';
import { type GpuWeight, weightWgsl, weightWgsl4 } from '../weights.js';
import { type Kernel, entry, firstWeight, header, u } from './common.js';
import { type Epilogue, epilogueWgsl } from './epilogue.js';

export function conv2dKernel(op: Conv2dOp, kernel: GpuWeight, e: Epilogue, label = op.name): Kernel {
  const [H, W, C] = op.inShape;
  const [OH, OW, F] = op.outShape;
  const [KH, KW] = op.kernelSize;
  const lanes = F % 4 === 0 ? 4 : 1;
  const inputs = e.residual ? 2 : 1;
  const k = (lanes === 4 ? weightWgsl4 : weightWgsl)(kernel, 'k', firstWeight(inputs));
  const tail = epilogueWgsl(e, firstWeight(inputs) + k.bindings, lanes);
  const [acc, q, scale] = lanes === 4 ? ['vec4<f32>(0.0)', 'k_q4', 'k_scale4'] : ['0.0', 'k_q', 'k_scale'];
  const code = `${header(inputs)}
${k.code}
${tail.code}
const H: i32 = ${H}; const W: i32 = ${W}; const C: u32 = ${u(C)};
const OH: u32 = ${u(OH)}; const OW: u32 = ${u(OW)}; const F: u32 = ${u(F)}; const FT: u32 = ${u(F / lanes)};
const KH: i32 = ${KH}; const KW: i32 = ${KW};
const SH: i32 = ${op.strides[0]}; const SW: i32 = ${op.strides[1]};
const PT: i32 = ${op.padTop}; const PL: i32 = ${op.padLeft};
${entry()}
  let f = (idx % FT) * ${u(lanes)};
  var t = idx / FT;
  let ox = i32(t % OW);
  t = t / OW;
  let oy = i32(t % OH);
  let n = t / OH;
  var acc = ${acc};
  for (var ky = 0; ky < KH; ky = ky + 1) {
    let iy = oy * SH - PT + ky;
    if (iy < 0 || iy >= H) { continue; }
    for (var kx = 0; kx < KW; kx = kx + 1) {
      let ix = ox * SW - PL + kx;
      if (ix < 0 || ix >= W) { continue; }
      let xo = ((n * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C;
      let ko = (u32(ky * KW + kx) * C) * F + f;
      for (var c = 0u; c < C; c = c + 1u) {
        acc = acc + x[xo + c] * ${q}(ko + c * F);
      }
    }
  }
  let o = ((n * OH + u32(oy)) * OW + u32(ox)) * F + f;
${tail.finish(`acc * ${scale}(f)`, 'f', 'o')}
}`;
  return { label, code, weights: [kernel, ...tail.weights], inputs, threads: (batch) => (batch * OH * OW * F) / lanes };
}
