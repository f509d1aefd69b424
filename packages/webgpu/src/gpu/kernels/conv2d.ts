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
  return op.outShape[2] % 4 === 0 ? conv2dKernel4(op, kernel, bias) : conv2dKernel1(op, kernel, bias);
}

function conv2dKernel4(op: Conv2dOp, kernel: GpuWeight, bias: GpuWeight | undefined): Kernel {
  const [H, W, C] = op.inShape;
  const [OH, OW, F] = op.outShape;
  const [KH, KW] = op.kernelSize;
  const k = weightWgsl4(kernel, 'k', 3);
  const b = bias === undefined ? undefined : weightWgsl4(bias, 'b', 3 + k.bindings);
  const code = `${header()}
${k.code}
${b?.code ?? ''}
const H: i32 = ${H}; const W: i32 = ${W}; const C: u32 = ${u(C)};
const OH: u32 = ${u(OH)}; const OW: u32 = ${u(OW)}; const F: u32 = ${u(F)}; const F4: u32 = ${u(F / 4)};
const KH: i32 = ${KH}; const KW: i32 = ${KW};
const SH: i32 = ${op.strides[0]}; const SW: i32 = ${op.strides[1]};
const PT: i32 = ${op.padTop}; const PL: i32 = ${op.padLeft};
${entry()}
  let f = (idx % F4) * 4u;
  var t = idx / F4;
  let ox = i32(t % OW);
  t = t / OW;
  let oy = i32(t % OH);
  let n = t / OH;
  var acc = vec4<f32>(0.0);
  for (var ky = 0; ky < KH; ky = ky + 1) {
    let iy = oy * SH - PT + ky;
    if (iy < 0 || iy >= H) { continue; }
    for (var kx = 0; kx < KW; kx = kx + 1) {
      let ix = ox * SW - PL + kx;
      if (ix < 0 || ix >= W) { continue; }
      let xo = ((n * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C;
      let ko = (u32(ky * KW + kx) * C) * F + f;
      for (var c = 0u; c < C; c = c + 1u) {
        acc = acc + x[xo + c] * k_q4(ko + c * F);
      }
    }
  }
  let v = acc * k_scale4(f)${b === undefined ? '' : ' + b_q4(f) * b_scale4(f)'};
  let o = (((n * OH + u32(oy)) * OW) + u32(ox)) * F + f;
  y[o] = ${activationWgsl(op.activation, 'v.x')};
  y[o + 1u] = ${activationWgsl(op.activation, 'v.y')};
  y[o + 2u] = ${activationWgsl(op.activation, 'v.z')};
  y[o + 3u] = ${activationWgsl(op.activation, 'v.w')};
}`;
  return { label: op.name, code, weights: [kernel, bias], threads: (batch) => (batch * OH * OW * F) / 4 };
}

function conv2dKernel1(op: Conv2dOp, kernel: GpuWeight, bias: GpuWeight | undefined): Kernel {
  const [H, W, C] = op.inShape;
  const [OH, OW, F] = op.outShape;
  const [KH, KW] = op.kernelSize;
  const k = weightWgsl(kernel, 'k', 3);
  const b = bias === undefined ? undefined : weightWgsl(bias, 'b', 3 + k.bindings);
  const code = `${header()}
${k.code}
${b?.code ?? ''}
const H: i32 = ${H}; const W: i32 = ${W}; const C: u32 = ${u(C)};
const OH: u32 = ${u(OH)}; const OW: u32 = ${u(OW)}; const F: u32 = ${u(F)};
const KH: i32 = ${KH}; const KW: i32 = ${KW};
const SH: i32 = ${op.strides[0]}; const SW: i32 = ${op.strides[1]};
const PT: i32 = ${op.padTop}; const PL: i32 = ${op.padLeft};
${entry()}
  let f = idx % F;
  var t = idx / F;
  let ox = i32(t % OW);
  t = t / OW;
  let oy = i32(t % OH);
  let n = t / OH;
  var acc = 0.0;
  for (var ky = 0; ky < KH; ky = ky + 1) {
    let iy = oy * SH - PT + ky;
    if (iy < 0 || iy >= H) { continue; }
    for (var kx = 0; kx < KW; kx = kx + 1) {
      let ix = ox * SW - PL + kx;
      if (ix < 0 || ix >= W) { continue; }
      let xo = ((n * u32(H) + u32(iy)) * u32(W) + u32(ix)) * C;
      let ko = (u32(ky * KW + kx) * C) * F + f;
      for (var c = 0u; c < C; c = c + 1u) {
        acc = acc + x[xo + c] * k_q(ko + c * F);
      }
    }
  }
  var v = acc * k_scale(f)${b === undefined ? '' : ' + b_q(f) * b_scale(f)'};
  y[idx] = ${activationWgsl(op.activation, 'v')};
}`;
  return { label: op.name, code, weights: [kernel, bias], threads: (batch) => batch * OH * OW * F };
}
