/**
 * Magnitude pruning. Masks zero the smallest-magnitude weights: exactly
 * round(sparsity × n) of them, ties broken by position, so the requested
 * sparsity is hit exactly. Per layer, or with one threshold over all layers
 * (global), or 2:4 structured (two of every four consecutive weights along
 * the input dimension of each output channel, as sparse tensor cores want).
 *
 * Sparsity grows on Zhu & Gupta's polynomial schedule (as in TensorFlow Model
 * Optimization): s(t) = s_f + (s_i − s_f)(1 − (t − t0)/(t1 − t0))³.
 */

/** Indices of the k smallest |values| (stable: lower index first among equals). */
function smallest(values: Float32Array, k: number): Uint32Array {
  const order = Uint32Array.from({ length: values.length }, (_, i) => i);
  order.sort((a, b) => Math.abs(values[a] as number) - Math.abs(values[b] as number) || a - b);
  return order.subarray(0, k);
}

/** 1 keeps a weight, 0 prunes it. */
export type Mask = Uint8Array;

export function magnitudeMask(values: Float32Array, sparsity: number): Mask {
  const mask = new Uint8Array(values.length).fill(1);
  for (const i of smallest(values, Math.round(sparsity * values.length))) mask[i] = 0;
  return mask;
}

/** One threshold over every tensor: exactly round(sparsity × total) weights pruned in all. */
export function globalMagnitudeMasks(tensors: readonly Float32Array[], sparsity: number): Mask[] {
  const total = tensors.reduce((n, t) => n + t.length, 0);
  const all = new Float32Array(total);
  let at = 0;
  for (const t of tensors) {
    all.set(t, at);
    at += t.length;
  }
  const flat = magnitudeMask(all, sparsity);
  at = 0;
  return tensors.map((t) => {
    const m = flat.slice(at, at + t.length);
    at += t.length;
    return m;
  });
}

/**
 * 2:4: for each output channel (the last axis), groups of four consecutive
 * weights along the flattened input axes keep their two largest. A trailing
 * group shorter than four keeps at most two.
 */
export function structured24Mask(values: Float32Array, shape: readonly number[]): Mask {
  const channels = shape[shape.length - 1] ?? 1;
  const rows = values.length / channels;
  const mask = new Uint8Array(values.length);
  for (let c = 0; c < channels; c++) {
    for (let r0 = 0; r0 < rows; r0 += 4) {
      const group: number[] = [];
      for (let r = r0; r < Math.min(rows, r0 + 4); r++) group.push(r * channels + c);
      group.sort((a, b) => Math.abs(values[b] as number) - Math.abs(values[a] as number) || a - b);
      for (const i of group.slice(0, 2)) mask[i] = 1;
    }
  }
  return mask;
}

export function applyMask(values: Float32Array, mask: Mask): void {
  for (let i = 0; i < values.length; i++) if (mask[i] === 0) values[i] = 0;
}

export function sparsityOf(values: Float32Array): number {
  let zeros = 0;
  for (const v of values) if (v === 0) zeros++;
  return values.length === 0 ? 0 : zeros / values.length;
}

export interface Schedule {
  readonly initialSparsity: number;
  readonly finalSparsity: number;
  readonly beginStep: number;
  readonly endStep: number;
}

/** Zhu & Gupta's polynomial (cubic) decay from the initial to the final sparsity. */
export function polynomialSparsity(step: number, s: Schedule): number {
  if (step <= s.beginStep) return s.initialSparsity;
  if (step >= s.endStep) return s.finalSparsity;
  const progress = (step - s.beginStep) / (s.endStep - s.beginStep);
  return s.finalSparsity + (s.initialSparsity - s.finalSparsity) * (1 - progress) ** 3;
}
