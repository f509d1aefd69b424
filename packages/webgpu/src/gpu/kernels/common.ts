/**
 * What every kernel shares: one thread per output element (or row, for
 * softmax), 64 threads a workgroup, a 2-D grid when one axis would exceed
 * WebGPU's 65,535 workgroups, and a uniform with the batch size and the
 * number of threads that do work. Shapes are baked into the WGSL text as
 * constants, so each layer compiles once at load; only the batch varies.
 */
import type { Elementwise } from '../../plan.js';
import type { GpuWeight } from '../weights.js';

export const WORKGROUP = 64;
const MAX_GROUPS = 65_535;

/** A compiled-at-load kernel: its WGSL, and how many threads a batch needs. */
export interface Kernel {
  readonly label: string;
  readonly code: string;
  /** Weights bound after the inputs and output, in order. */
  readonly weights: ReadonlyArray<GpuWeight | undefined>;
  /** Activation inputs (default 1): x at binding 1, the others (x1, x2, ...) from binding 3; weights follow them. */
  readonly inputs?: number;
  threads(batch: number): number;
}

/** Bindings 0-2 (params, x, y) and, for kernels that read more than one activation, x1, x2, ... from binding 3. */
export function header(inputs = 1): string {
  const more = Array.from({ length: inputs - 1 }, (_, i) => `@group(0) @binding(${3 + i}) var<storage, read> x${i + 1}: array<f32>;`);
  return [
    'struct Params { batch: u32, total: u32 };',
    '@group(0) @binding(0) var<uniform> params: Params;',
    '@group(0) @binding(1) var<storage, read> x: array<f32>;',
    '@group(0) @binding(2) var<storage, read_write> y: array<f32>;',
    ...more,
  ].join('\n');
}

/** The binding of a kernel's first weight. */
export function firstWeight(inputs = 1): number {
  return 2 + inputs;
}

/** The entry point's first lines: `idx`, returning when beyond the work. */
export function entry(): string {
  return `@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let idx = gid.x + gid.y * groups.x * ${WORKGROUP}u;
  if (idx >= params.total) { return; }`;
}

export function dispatchSize(threads: number): [number, number] {
  const groups = Math.max(1, Math.ceil(threads / WORKGROUP));
  const x = Math.min(groups, MAX_GROUPS);
  return [x, Math.ceil(groups / x)];
}

export function u(n: number): string {
  return `${n}u`;
}

/** WGSL for an activation applied to `v` (softmax has its own kernel). */
export function activationWgsl(a: Elementwise, v: string): string {
  switch (a) {
    case 'linear':
      return v;
    case 'relu':
      return `max(${v}, 0.0)`;
    case 'relu6':
      return `clamp(${v}, 0.0, 6.0)`;
    case 'sigmoid':
      return `(1.0 / (1.0 + exp(-(${v}))))`;
    case 'tanh':
      // Clamped: some drivers compute tanh through exp and overflow to NaN.
      return `tanh(clamp(${v}, -15.0, 15.0))`;
    case 'elu':
      return `select(exp(${v}) - 1.0, ${v}, ${v} > 0.0)`;
  }
}
