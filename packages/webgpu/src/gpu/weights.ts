/**
 * Weights as the GPU keeps them. int8 values stay int8, four to a 32-bit
 * word, with their float32 scales (one per output channel, or one per
 * tensor); shared (clustered) weights stay 8-bit indices, four to a word,
 * with their codebook; float32 weights stay float32. Sparse tensors arrive
 * densified by the .tamp reader and are kept in their value encoding (int8
 * or indices), never as float32. The WGSL helpers that read each kind are
 * generated here too, so a kernel only asks for "value i" and "scale of
 * channel c".
 */
import type { TampTensor } from '@tamp/compress';
import { BUFFER_USAGE, type GpuMemory } from './memory.js';

export interface GpuWeight {
  readonly name: string;
  readonly kind: 'f32' | 'int8' | 'clustered';
  readonly data: GPUBuffer;
  /** int8: scales; clustered: codebook. */
  readonly aux: GPUBuffer | undefined;
  /** Number of scales (int8): one per output channel, or 1 for one scale per tensor. */
  readonly scales: number;
  readonly bytes: number;
  readonly storage: string;
}

function bytesOf(view: Int8Array | Uint8Array): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export function uploadWeight(memory: GpuMemory, t: TampTensor): GpuWeight {
  const usage = BUFFER_USAGE.STORAGE;
  const e = t.encoding;
  const sparse = t.storage === 'sparse' ? ', stored sparse (densified at load)' : '';
  let w: Omit<GpuWeight, 'bytes'>;
  if (e.kind === 'f32') {
    w = { name: t.name, kind: 'f32', data: memory.upload(`${t.name} f32`, e.data, usage, 'weight'), aux: undefined, scales: 0, storage: `float32${sparse}` };
  } else if (e.kind === 'int8') {
    w = {
      name: t.name,
      kind: 'int8',
      data: memory.upload(`${t.name} int8x4`, bytesOf(e.values), usage, 'weight'),
      aux: memory.upload(`${t.name} scales`, e.scales, usage, 'weight'),
      scales: e.scales.length,
      storage: `int8 packed 4 per word, ${e.scales.length} scales${sparse}`,
    };
  } else if (e.kind === 'int8-tensor') {
    w = {
      name: t.name,
      kind: 'int8',
      data: memory.upload(`${t.name} int8x4`, bytesOf(e.values), usage, 'weight'),
      aux: memory.upload(`${t.name} scale`, Float32Array.of(e.scale), usage, 'weight'),
      scales: 1,
      storage: 'int8 packed 4 per word, one scale',
    };
  } else {
    w = {
      name: t.name,
      kind: 'clustered',
      data: memory.upload(`${t.name} indices`, e.indices, usage, 'weight'),
      aux: memory.upload(`${t.name} codebook`, e.codebook, usage, 'weight'),
      scales: 0,
      storage: `8-bit indices packed 4 per word, codebook of ${e.codebook.length}${sparse}`,
    };
  }
  const bytes = Math.max(4, Math.ceil(w.data.size / 4) * 4) + (w.aux === undefined ? 0 : w.aux.size);
  return { ...w, bytes };
}

/** WGSL bindings and the two reader functions for a weight bound as `prefix`: `<prefix>_q(i)` (value i, unscaled) and `<prefix>_scale(c)`. */
export function weightWgsl(w: GpuWeight, prefix: string, binding: number): { code: string; bindings: number } {
  const data = `@group(0) @binding(${binding}) var<storage, read> ${prefix}_data: array<${w.kind === 'f32' ? 'f32' : 'u32'}>;`;
  const aux = `@group(0) @binding(${binding + 1}) var<storage, read> ${prefix}_aux: array<f32>;`;
  if (w.kind === 'f32') {
    return { code: `${data}\nfn ${prefix}_q(i: u32) -> f32 { return ${prefix}_data[i]; }\nfn ${prefix}_scale(c: u32) -> f32 { return 1.0; }`, bindings: 1 };
  }
  if (w.kind === 'int8') {
    // Modulo: a depthwise kernel's scales may cover only its last axis (element i is channel i mod scales, as tensorValues reads it).
    const scale = w.scales === 1 ? `${prefix}_aux[0]` : `${prefix}_aux[c % ${w.scales}u]`;
    return {
      code: `${data}\n${aux}\nfn ${prefix}_q(i: u32) -> f32 { return f32(extractBits(bitcast<i32>(${prefix}_data[i >> 2u]), (i & 3u) * 8u, 8u)); }\nfn ${prefix}_scale(c: u32) -> f32 { return ${scale}; }`,
      bindings: 2,
    };
  }
  return {
    code: `${data}\n${aux}\nfn ${prefix}_q(i: u32) -> f32 { return ${prefix}_aux[extractBits(${prefix}_data[i >> 2u], (i & 3u) * 8u, 8u)]; }\nfn ${prefix}_scale(c: u32) -> f32 { return 1.0; }`,
    bindings: 2,
  };
}

/**
 * Like weightWgsl, plus `<prefix>_q4(i)`: the four values i..i+3 as a vec4
 * (i a multiple of 4), read with one load of the packed word, and
 * `<prefix>_scale4(c)` for channels c..c+3. Kernels that compute four
 * consecutive output channels per thread use it when the channel count is
 * a multiple of 4, so four int8 weights arrive in one 32-bit load.
 */
export function weightWgsl4(w: GpuWeight, prefix: string, binding: number): { code: string; bindings: number } {
  const base = weightWgsl(w, prefix, binding);
  let q4: string;
  if (w.kind === 'f32') {
    q4 = `fn ${prefix}_q4(i: u32) -> vec4<f32> { return vec4<f32>(${prefix}_data[i], ${prefix}_data[i + 1u], ${prefix}_data[i + 2u], ${prefix}_data[i + 3u]); }`;
  } else if (w.kind === 'int8') {
    // Shifting left then arithmetic-right sign-extends each byte.
    q4 = `fn ${prefix}_q4(i: u32) -> vec4<f32> { let w = bitcast<i32>(${prefix}_data[i >> 2u]); return vec4<f32>(vec4<i32>(w << 24u, w << 16u, w << 8u, w) >> vec4<u32>(24u)); }`;
  } else {
    q4 = `fn ${prefix}_q4(i: u32) -> vec4<f32> { let w = ${prefix}_data[i >> 2u]; return vec4<f32>(${prefix}_aux[w & 255u], ${prefix}_aux[(w >> 8u) & 255u], ${prefix}_aux[(w >> 16u) & 255u], ${prefix}_aux[w >> 24u]); }`;
  }
  const scale4 =
    w.kind === 'int8' && w.scales > 1
      ? `fn ${prefix}_scale4(c: u32) -> vec4<f32> { return vec4<f32>(${prefix}_scale(c), ${prefix}_scale(c + 1u), ${prefix}_scale(c + 2u), ${prefix}_scale(c + 3u)); }`
      : `fn ${prefix}_scale4(c: u32) -> vec4<f32> { return vec4<f32>(${prefix}_scale(c)); }`;
  return { code: `${base.code}\n${q4}\n${scale4}`, bindings: base.bindings };
}

export function weightEntries(w: GpuWeight, binding: number): GPUBindGroupEntry[] {
  const entries: GPUBindGroupEntry[] = [{ binding, resource: { buffer: w.data } }];
  if (w.aux !== undefined) entries.push({ binding: binding + 1, resource: { buffer: w.aux } });
  return entries;
}
