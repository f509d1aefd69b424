/**
 * 2-D convolution, NHWC, kernel [kh, kw, in, out], any stride, valid or
 * same padding, with bias and activation fused into the same dispatch.
 * When the output channels are a multiple of 4 each thread computes four
 * consecutive channels of one output pixel: one load of the input value
 * serves four multiply-adds, and four int8 weights (consecutive in the
 * kernel's last axis) arrive in one 32-bit word. Otherwise one thread per
 * output element.
 */
import type { Conv2dOp } from '../../plan.js';
import { type GpuWeight, weightWgsl, weightWgsl4 } from '../weights.js';
import { type Kernel, activationWgsl, entry, header, u } from './common.js';

export function conv2dKernel(op: Conv2dOp, kernel: GpuWeight, bias: GpuWeight | undefined): Kernel {
  const [H, W, C] = op.inShape;
  const [OH, OW, F] = op.outShape;
  const [KH, KW] = op.kernelSize;
  // Output channels per thread, and the WGSL that differs between one and four.
  const lanes = F % 4 === 0 ? 4 : 1;
  const read = lanes === 4 ? weightWgsl4 : weightWgsl;
  const k = read(kernel, 'k', 3);
  const b = bias === undefined ? undefined : read(bias, 'b', 3 + k.bindings);
  const [acc, q, scale] = lanes === 4 ? ['vec4<f32>(0.0)', 'k_q4', '_scale4'] : ['0.0', 'k_q', '_scale'];
  const store =
    lanes === 4
      ? `  let o = (((n * OH + u32(oy)) * OW) + u32(ox)) * F + f;
${['x', 'y', 'z', 'w'].map((c, i) => `  y[o + ${i}u] = ${activationWgsl(op.activation, `v.${c}`)};`).join('\n')}`
      : `  y[idx] = ${activationWgsl(op.activation, 'v')};`;
  const code = `${header()}
${k.code}
${b?.code ?? ''}
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
  let v = acc * k${scale}(f)${b === undefined ? '' : ` + b${q.slice(1)}(f) * b${scale}(f)`};
${store}
}`;
  return { label: op.name, code, weights: [kernel, bias], threads: (batch) => (batch * OH * OW * F) / lanes };
}
