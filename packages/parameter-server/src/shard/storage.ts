/**
 * A shard's memory: its variable parts, their optimizer slots (in the
 * order OPTIMIZER_SLOTS gives), the one optimizer that updates them and the
 * KernelArena they live in when the SIMD loops can reach them.
 *
 * `ShardStorage.build` checks every tensor of an Assign before allocating, so
 * a refused Assign leaves the shard's current storage untouched.
 */
import { InvalidArgumentError, OPTIMIZER_STATE_TENSOR, type ShardConfig, type WireTensor, partKey, sizeOfShape } from '@tamp/core';
import { type ServerOptimizer, createServerOptimizer } from '../optimizers/index.js';
import { OPTIMIZER_SLOTS } from '../optimizers/optimizer.js';
import { KernelArena, allocFloats } from '../optimizers/wasm-kernels.js';

export interface ShardPart {
  readonly name: string;
  readonly shape: readonly number[];
  readonly sliceStart: number;
  readonly sliceLength: number;
  readonly value: Float32Array;
  readonly slots: Float32Array[];
}

interface PlannedPart {
  readonly t: WireTensor;
  /** Slot values given by the Assign (a resume), by slot index; undefined: a fresh slot. */
  readonly given: ReadonlyArray<WireTensor | undefined>;
}

/** Sort an Assign's tensors into variables, slots and optimizer state, and check that they fit together. */
function plan(config: ShardConfig, tensors: readonly WireTensor[], slotNames: readonly string[]) {
  const values = new Map<string, WireTensor>();
  const slotTensors = new Map<string, WireTensor>();
  let globalState: Record<string, number> | undefined;
  for (const t of tensors) {
    if (t.dtype !== 'float32') throw new InvalidArgumentError(`assign: tensor "${t.name}" is ${t.dtype}, expected float32`);
    if (t.name === OPTIMIZER_STATE_TENSOR) {
      const [accBeta1, accBeta2] = t.data;
      globalState = { accBeta1: accBeta1 ?? NaN, accBeta2: accBeta2 ?? NaN };
      continue;
    }
    const target = t.name.lastIndexOf(':') === -1 ? values : slotTensors;
    const key = partKey(t.name, t.sliceStart);
    if (target.has(key)) throw new InvalidArgumentError(`assign: tensor "${t.name}" (slice at ${t.sliceStart}) appears twice`);
    target.set(key, t);
  }
  if (values.size === 0) throw new InvalidArgumentError('assign: no variables');
  const planned = new Map<string, PlannedPart>();
  for (const [key, t] of values) {
    if (sizeOfShape(t.shape) < t.sliceStart + t.data.length) throw new InvalidArgumentError(`assign: "${t.name}" slice runs past its shape`);
    const given = slotNames.map((slot) => {
      const slotKey = partKey(`${t.name}:${slot}`, t.sliceStart);
      const g = slotTensors.get(slotKey);
      if (g !== undefined && g.data.length !== t.data.length) throw new InvalidArgumentError(`assign: slot "${g.name}" has ${g.data.length} elements, its variable ${t.data.length}`);
      slotTensors.delete(slotKey);
      return g;
    });
    planned.set(key, { t, given });
  }
  if (slotTensors.size > 0) {
    throw new InvalidArgumentError(`assign: optimizer slots without a variable or not used by ${config.optimizer.name}: ${[...slotTensors.values()].map((t) => t.name).join(', ')}`);
  }
  return { planned, globalState };
}

export class ShardStorage {
  /** Parts by partKey(name, sliceStart), in Assign order. */
  readonly parts: ReadonlyMap<string, ShardPart>;
  readonly optimizer: ServerOptimizer;
  /** Momentum correction (ShardConfig.momentumCorrection): plain SGD at the job's learning rate, for momentum-corrected pushes. */
  private readonly plain: ServerOptimizer | undefined;
  /** Bytes of the variables (what a push of gradients carries). */
  readonly bytes: number;

  private constructor(parts: ReadonlyMap<string, ShardPart>, optimizer: ServerOptimizer, plain: ServerOptimizer | undefined) {
    this.parts = parts;
    this.optimizer = optimizer;
    this.plain = plain;
    this.bytes = [...parts.values()].reduce((n, p) => n + p.sliceLength * 4, 0);
  }

  /**
   * Storage for an Assign: variables (plain names), optimizer slots
   * ("<name>:<slot>", optional: fresh slots otherwise) and optimizer state
   * (OPTIMIZER_STATE_TENSOR, optional). Everything is checked before the
   * arena is reserved.
   */
  static build(config: ShardConfig, tensors: readonly WireTensor[]): ShardStorage {
    const slotNames = OPTIMIZER_SLOTS[config.optimizer.name];
    const { planned, globalState } = plan(config, tensors, slotNames);
    // Variables and slots live in one WebAssembly memory when they fit, so the SIMD update loops can reach them.
    const arena = KernelArena.create([...planned.values()].flatMap(({ t }) => new Array<number>(1 + slotNames.length).fill(t.data.length)));
    const optimizer = createServerOptimizer(config.optimizer, arena);
    const copy = (data: ArrayLike<number>) => {
      const out = allocFloats(arena, data.length);
      out.set(data);
      return out;
    };
    const parts = new Map<string, ShardPart>();
    for (const [key, { t, given }] of planned) {
      const value = copy(t.data);
      const slots = slotNames.map((slot, i) => {
        const g = given[i];
        return g === undefined ? optimizer.initSlot(slot, t.data.length) : copy(g.data);
      });
      parts.set(key, { name: t.name, shape: [...t.shape], sliceStart: t.sliceStart, sliceLength: t.data.length, value, slots });
    }
    if (globalState !== undefined) optimizer.restoreGlobalState(globalState);
    // The workers keep the momentum of momentum-corrected pushes (DGC), so those get plain SGD, over the same arena.
    const plain = config.momentumCorrection === true ? createServerOptimizer({ ...config.optimizer, name: 'sgd' }, arena) : undefined;
    return new ShardStorage(parts, optimizer, plain);
  }

  holdsVariable(name: string): boolean {
    for (const p of this.parts.values()) if (p.name === name) return true;
    return false;
  }

  /**
   * Apply one validated gradient per part as one optimizer step, and (or
   * instead) one momentum-corrected gradient per part with plain SGD: the
   * momentum slots are left alone, since the workers applied the momentum.
   */
  apply(grads: ReadonlyMap<string, Float32Array> | undefined, corrected?: ReadonlyMap<string, Float32Array>): void {
    if (grads !== undefined) {
      for (const [key, part] of this.parts) this.optimizer.apply(part.value, grads.get(key) as Float32Array, part.slots);
      this.optimizer.endStep();
    }
    if (corrected !== undefined) {
      // validatePush refuses a corrected push unless the job set momentumCorrection, which built `plain`.
      if (this.plain === undefined) throw new Error('momentum-corrected gradients reached a shard without momentum correction');
      for (const [key, part] of this.parts) this.plain.apply(part.value, corrected.get(key) as Float32Array, []);
    }
  }
}
