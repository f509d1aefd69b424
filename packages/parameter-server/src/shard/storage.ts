/**
 * A shard's memory: its variable parts, their optimizer slots (in the
 * order OPTIMIZER_SLOTS gives), the one optimizer that updates them and the
 * KernelArena they live in when the SIMD loops can reach them.
 *
 * `ShardStorage.build` checks every tensor of an Assign before allocating, so
 * a refused Assign leaves the shard's current storage untouched.
 */
import { ClusterError, InvalidArgumentError, OPTIMIZER_STATE_TENSOR, type ShardConfig, type WireTensor, partKey, sizeOfShape } from '@tamp/core/base';
import { type ServerOptimizer, createServerOptimizer } from '../optimizers/index.js';
import { OPTIMIZER_SLOTS } from '../optimizers/optimizer.js';
import { KernelArena, allocFloats, lanes } from '../optimizers/wasm-kernels.js';
import { firstNonFinite } from './validation.js';

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

/**
 * Whether Adam slots ([m, v] per part) hold a first moment but no second
 * moment at all: what the earlier form of the Adam correction checkpointed
 * (its shards kept m alone). Adam itself never leaves m non-zero where v is
 * zero, unless a gradient's square underflows (|g| under about 1e-23).
 */
function firstMomentOnly(parts: readonly ShardPart[]): boolean {
  let m = false;
  for (const p of parts) {
    const [ms, vs] = p.slots;
    if (ms === undefined || vs === undefined) return false;
    if (vs.some((x) => x !== 0)) return false;
    m ||= ms.some((x) => x !== 0);
  }
  return m;
}

/** Where an update would leave a non-finite value: the first one found. */
export interface NonFiniteUpdate {
  /** The variable, or "<variable>:<slot>" for an optimizer slot. */
  readonly tensor: string;
  /** Element within the whole variable. */
  readonly element: number;
  readonly value: number;
  /** The largest |gradient| of that part (what made it overflow, usually). */
  readonly maxGradient: number;
}

function maxAbs(data: Float32Array): number {
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const a = Math.abs(data[i] as number);
    if (a > m) m = a;
  }
  return m;
}

export class ShardStorage {
  /** Parts by partKey(name, sliceStart), in Assign order. */
  readonly parts: ReadonlyMap<string, ShardPart>;
  readonly optimizer: ServerOptimizer;
  /** Momentum or Adam correction (ShardConfig.momentumCorrection, adamCorrection): plain SGD at the job's learning rate, for corrected pushes. */
  private readonly plain: ServerOptimizer | undefined;
  /** Bytes of the variables (what a push of gradients carries). */
  readonly bytes: number;
  /**
   * Room for one part's value and slots (as long as the longest part): an
   * update is first computed here, part by part, and checked for finite
   * results before it touches the real arrays (`apply`).
   */
  private readonly scratch: readonly Float32Array[];

  private constructor(parts: ReadonlyMap<string, ShardPart>, optimizer: ServerOptimizer, plain: ServerOptimizer | undefined, scratch: readonly Float32Array[]) {
    this.parts = parts;
    this.optimizer = optimizer;
    this.plain = plain;
    this.scratch = scratch;
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
    // The scratch arrays (one value and its slots, as long as the longest part) live there too.
    const longest = Math.max(...[...planned.values()].map(({ t }) => t.data.length));
    const arrays = [...planned.values()].map(({ t }) => t.data.length).concat(longest);
    const arena = KernelArena.create(arrays.flatMap((n) => new Array<number>(1 + slotNames.length).fill(n)));
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
    // A checkpoint of the Adam correction's earlier form: its shards applied Adam's first moment alone and never fed v, so
    // plain pushes would now divide by an empty v (steps thousands of times too large). Adam starts afresh from these weights.
    const earlierForm = config.optimizer.name === 'adam' && firstMomentOnly([...parts.values()]);
    if (earlierForm) for (const p of parts.values()) p.slots[0]?.fill(0);
    if (globalState !== undefined && !earlierForm) optimizer.restoreGlobalState(globalState);
    // The workers keep the optimizer's state for momentum- and Adam-corrected pushes, so those get plain SGD, over the same arena.
    const plain = config.momentumCorrection === true || config.adamCorrection === true ? createServerOptimizer({ ...config.optimizer, name: 'sgd' }, arena) : undefined;
    const scratch = Array.from({ length: 1 + slotNames.length }, () => allocFloats(arena, longest));
    return new ShardStorage(parts, optimizer, plain, scratch);
  }

  holdsVariable(name: string): boolean {
    for (const p of this.parts.values()) if (p.name === name) return true;
    return false;
  }

  /**
   * Where applying these gradients would leave a NaN or Infinity in a
   * variable or a slot (a finite but huge gradient: 1e20 squared overflows
   * Adam's v), or undefined when every result is finite. Each part's update
   * (the optimizer step for `grads`, then plain SGD for momentum- or
   * Adam-corrected `corrected`, as `apply` does them) is first checked by the
   * optimizer's WebAssembly twin (staysFinite, no stores); when that cannot
   * tell or finds a non-finite result, the update is computed on a copy in
   * the scratch arrays, with the optimizer's current state (endStep is not
   * called), and scanned for where; nothing of the shard changes. Exact
   * rather than a bound on the gradient's magnitude: whether an update
   * overflows depends on the values and slots it lands on, and a
   * conservative bound would refuse gradients that are fine.
   */
  checkUpdate(grads: ReadonlyMap<string, Float32Array> | undefined, corrected?: ReadonlyMap<string, Float32Array>): NonFiniteUpdate | undefined {
    if (this.staysFinite(grads, corrected)) return undefined;
    for (const [key, part] of this.parts) {
      const n = part.sliceLength;
      // Views of exactly this part's length; the lanes past it are zeroed, as the arena's padding is.
      const [value, ...slots] = this.scratch.map((s, i) => {
        const src = i === 0 ? part.value : (part.slots[i - 1] as Float32Array);
        s.set(src);
        s.fill(0, n, Math.min(s.length, lanes(n)));
        return s.subarray(0, n);
      }) as [Float32Array, ...Float32Array[]];
      const grad = grads?.get(key);
      const fixed = corrected?.get(key);
      if (grad !== undefined) this.optimizer.apply(value, grad, slots);
      if (fixed !== undefined) this.plainSgd().apply(value, fixed, []);
      const names = [part.name, ...this.optimizer.slotNames.map((slot) => `${part.name}:${slot}`)];
      for (const [i, a] of [value, ...slots].entries()) {
        const bad = firstNonFinite(a);
        if (bad !== -1) return { tensor: names[i] as string, element: part.sliceStart + bad, value: a[bad] as number, maxGradient: Math.max(grad === undefined ? 0 : maxAbs(grad), fixed === undefined ? 0 : maxAbs(fixed)) };
      }
    }
    return undefined;
  }

  /**
   * True when the optimizers' WebAssembly checks (ServerOptimizer.staysFinite)
   * say one update (of `grads`, or of `corrected`, not both: the second would
   * start from the first's results) leaves every part finite; false when one
   * says otherwise or cannot tell, so checkUpdate computes it on a copy and
   * finds where (the common push costs one read-only pass instead of a copy
   * and a scan of the value and of each slot, and the update).
   */
  private staysFinite(grads: ReadonlyMap<string, Float32Array> | undefined, corrected: ReadonlyMap<string, Float32Array> | undefined): boolean {
    if ((grads === undefined) === (corrected === undefined)) return false;
    const optimizer = grads !== undefined ? this.optimizer : this.plainSgd();
    const given = (grads ?? corrected) as ReadonlyMap<string, Float32Array>;
    for (const [key, part] of this.parts) {
      const g = given.get(key);
      if (g === undefined || optimizer.staysFinite(part.value, g, grads !== undefined ? part.slots : []) !== true) return false;
    }
    return true;
  }

  /** Refuse (NON_FINITE_UPDATE, nothing changed) gradients whose update would leave a variable or slot non-finite (checkUpdate). */
  refuseNonFinite(grads: ReadonlyMap<string, Float32Array> | undefined, what: string, corrected?: ReadonlyMap<string, Float32Array>): void {
    const bad = this.checkUpdate(grads, corrected);
    if (bad === undefined) return;
    throw new ClusterError(
      'NON_FINITE_UPDATE',
      `${what}: applying it would make "${bad.tensor}" ${bad.value} at element ${bad.element} (largest |gradient| ${bad.maxGradient.toExponential(2)}); refused, nothing changed. Lower the learning rate, clip gradients, or check the loss`,
    );
  }

  /** The plain-SGD optimizer of momentum- and Adam-corrected pushes. */
  private plainSgd(): ServerOptimizer {
    // validatePush refuses a corrected push unless the job set momentumCorrection or adamCorrection, which built `plain`.
    if (this.plain === undefined) throw new Error('corrected gradients reached a shard without momentum or Adam correction');
    return this.plain;
  }

  /**
   * Apply one validated gradient per part as one optimizer step, and (or
   * instead) one momentum- or Adam-corrected gradient per part with plain
   * SGD: the optimizer's slots are left alone, since the workers kept its
   * state.
   * Callers check them first (refuseNonFinite): the check costs about one
   * more optimizer pass per push (with JavaScript loops, also a copy and a
   * scan), and the update then runs on the real arrays with the same float32
   * operations, so the same results.
   */
  apply(grads: ReadonlyMap<string, Float32Array> | undefined, corrected?: ReadonlyMap<string, Float32Array>): void {
    if (grads !== undefined) {
      for (const [key, part] of this.parts) this.optimizer.apply(part.value, grads.get(key) as Float32Array, part.slots);
      this.optimizer.endStep();
    }
    if (corrected !== undefined) {
      const plain = this.plainSgd();
      for (const [key, part] of this.parts) plain.apply(part.value, corrected.get(key) as Float32Array, []);
    }
  }
}
