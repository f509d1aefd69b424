/**
 * What follows a convolution's or dense layer's sum, in the same dispatch:
 * the kernel's per-channel scale (int8), then either the bias or a folded
 * batch norm (a per-channel multiply-add whose add includes the bias), a
 * residual input, and the activation. `lanes` is 1 (one output element per
 * thread) or 4 (four consecutive channels as a vec4).
 */
import type { Elementwise } from '../../plan.js';
import { type GpuWeight, weightWgsl, weightWgsl4 } from '../weights.js';
import { activationWgsl, u } from './common.js';

export interface Epilogue {
  readonly bias: GpuWeight | undefined;
  /** Folded batch norm: float32 [m_0 .. m_{C-1}, a_0 .. a_{C-1}]; replaces the bias. */
  readonly affine: GpuWeight | undefined;
  /** Read x1 at the output's index and add it before the activation. */
  readonly residual: boolean;
  readonly activation: Elementwise;
  readonly channels: number;
}

export function epilogueWgsl(e: Epilogue, binding: number, lanes: 1 | 4): { code: string; weights: GpuWeight[]; finish(v: string, f: string, o: string): string } {
  const read = lanes === 4 ? weightWgsl4 : weightWgsl;
  let code = '';
  let add = (v: string, _f: string) => v;
  const weights: GpuWeight[] = [];
  const vec = (f: (i: number) => string) => (lanes === 4 ? `vec4<f32>(${[0, 1, 2, 3].map(f).join(', ')})` : f(0));
  const plus = (base: string, i: number) => (i === 0 ? base : `${base} + ${u(i)}`);
  if (e.affine !== undefined) {
    code = `@group(0) @binding(${binding}) var<storage, read> aff: array<f32>;\nconst CH: u32 = ${u(e.channels)};`;
    weights.push(e.affine);
    add = (v, f) => `(${v}) * ${vec((i) => `aff[${plus(f, i)}]`)} + ${vec((i) => `aff[CH + ${plus(f, i)}]`)}`;
  } else if (e.bias !== undefined) {
    code = read(e.bias, 'b', binding).code;
    weights.push(e.bias);
    add = (v, f) => (lanes === 4 ? `(${v}) + b_q4(${f}) * b_scale4(${f})` : `(${v}) + b_q(${f}) * b_scale(${f})`);
  }
  const finish = (v: string, f: string, o: string) => {
    const residual = e.residual ? ` + ${vec((i) => `x1[${plus(o, i)}]`)}` : '';
    const lines = [`  let pre = ${add(v, f)}${residual};`];
    if (lanes === 1) lines.push(`  y[${o}] = ${activationWgsl(e.activation, 'pre')};`);
    else ['x', 'y', 'z', 'w'].forEach((c, i) => lines.push(`  y[${plus(o, i)}] = ${activationWgsl(e.activation, `pre.${c}`)};`));
    return lines.join('\n');
  };
  return { code, weights, finish };
}
