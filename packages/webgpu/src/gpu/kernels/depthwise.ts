/**
 * Depthwise convolution, NHWC, kernel [kh, kw, in, multiplier]: output
 * channel f = c·multiplier + m reads input channel c, and its weight for tap
 * (ky, kx) sits at (ky·kw + kx)·out + f, so int8 scales per output channel
 * (in·multiplier of them) index by f as for any other kernel. Four
 * consecutive output channels per thread when their count is a multiple of
 * 4 (four int8 weights in one word); the epilogue as in conv2d.
 */
import type { DepthwiseOp } from '../../plan.js';
import { type GpuWeight, weightWgsl, weightWgsl4 } from '../weights.js';
import { type Kernel, entry, firstWeight, header, u } from './common.js';
import { type Epilogue, epilogueWgsl } from './epilogue.js';

export function depthwiseKernel(op: DepthwiseOp, kernel: GpuWeight, e: Epilogue, label = op.name): Kernel {
  const [H, W, C] = op.inShape;
  const [OH, OW, F] = op.outShape;
  const [KH, KW] = op.kernelSize;
  const M = op.multiplier;
  const lanes = F % 4 === 0 ? 4 : 1;
  const inputs = e.residual ? 2 : 1;
  const k = (lanes === 4 ? weightWgsl4 : weightWgsl)(kernel, 'k', firstWeight(inputs));
  const tail = epilogueWgsl(e, firstWeight(inputs) + k.bindings, lanes);
  // The input values the lanes read: four consecutive channels when the multiplier is 1.
  const xs =
    lanes === 1
      ? 'x[xo + f / M]'
      : M === 1
        ? 'vec4<f32>(x[xo + f], x[xo + f + 1u], x[xo + f + 2u], x[xo + f + 3u])'
        : 'vec4<f32>(x[xo + f / M], x[xo + (f + 1u) / M], x[xo + (f + 2u) / M], x[xo + (f + 3u) / M])';
  const code = `${header(inputs)}
${k.code}
${tail.code}
const H: i32 = ${H}; const W: i32 = ${W}; const C: u32 = ${u(C)}; const M: u32 = ${u(M)};
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
  var acc = ${lanes === 4 ? 'vec4<f32>(0.0)' : '0.0'};
  for (var ky = 0; ky < KH; ky = ky + 1) {
    let iy = oy * SH - PT + ky;
    if (iy < 0 || iy >= H) { continue; }
    for (var kx = 0; kx < KW; kx = kx + 1) {
      let ix = ox * SW - PL + kx;
      if (ix < 0 || ix >= W) { continue; }
      let xo = ((n * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C;
      acc = acc + ${xs} * ${lanes === 4 ? 'k_q4' : 'k_q'}(u32(ky * KW + kx) * F + f);
    }
  }
  let o = ((n * OH + u32(oy)) * OW + u32(ox)) * F + f;
${tail.finish(`acc * ${lanes === 4 ? 'k_scale4' : 'k_scale'}(f)`, 'f', 'o')}
}`;
  return { label, code, weights: [kernel, ...tail.weights], inputs, threads: (batch) => (batch * OH * OW * F) / lanes };
}
