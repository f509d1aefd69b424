/**
 * Activation buffers by liveness: every tensor a dispatch writes takes a
 * buffer ("slot") that no live tensor holds, and gives it back after the
 * last dispatch that reads it, so a deep network needs a handful of buffers
 * however many layers it has. A dispatch's output never shares a slot with
 * its inputs (they are released only after it is placed), which WebGPU
 * requires of a read and a read-write binding anyway. Best fit: the
 * smallest free slot that is large enough, else the largest free one grown.
 */
import type { Plan } from '../plan.js';

export interface Slots {
  /** Slot of each tensor (by tensor number). */
  readonly slotOf: ReadonlyMap<number, number>;
  /** Elements per sample each slot holds. */
  readonly sizes: readonly number[];
}

export function assignSlots(plan: Plan, dispatches: ReadonlyArray<{ readonly inputs: readonly number[]; readonly output: number }>): Slots {
  const lastUse = new Map<number, number>();
  dispatches.forEach((d, i) => d.inputs.forEach((t) => lastUse.set(t, i)));
  lastUse.set(plan.output, Infinity);
  const sizes: number[] = [];
  const free = new Set<number>();
  const slotOf = new Map<number, number>();
  const place = (t: number) => {
    const need = plan.tensorSizes[t] as number;
    let best: number | undefined;
    for (const s of free) {
      const size = sizes[s] as number;
      const current = best === undefined ? undefined : (sizes[best] as number);
      if (current === undefined) best = s;
      else if (size >= need ? current < need || size < current : current < need && size > current) best = s;
    }
    if (best === undefined) {
      sizes.push(need);
      best = sizes.length - 1;
    } else {
      free.delete(best);
      sizes[best] = Math.max(sizes[best] as number, need);
    }
    slotOf.set(t, best);
  };
  place(0);
  dispatches.forEach((d, i) => {
    if (!slotOf.has(d.output)) place(d.output);
    for (const t of new Set(d.inputs)) if (lastUse.get(t) === i) free.add(slotOf.get(t) as number);
  });
  return { slotOf, sizes };
}
