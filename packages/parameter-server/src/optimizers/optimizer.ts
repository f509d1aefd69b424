/**
 * Server-side optimizers. Each applies one gradient to one variable part in
 * place, doing tfjs's float32 arithmetic op by op in tfjs's order, so a
 * shard's variables match what tf.train.<optimizer> computes for the same
 * gradients: bit for bit in the WebAssembly SIMD loops (wasm-kernels.ts, used
 * when the part lives in the shard's kernel arena), with Math.fround after
 * each operation in the JavaScript loops (Adam's JavaScript loop rounds once
 * per stored value: within about one ulp).
 */
import type { OptimizerName, OptimizerSettings } from '@tamp/core/base';
import type { KernelKind } from './wasm-kernels.js';

/**
 * Each optimizer's per-variable state arrays, in the order a variable part
 * keeps them: known from the name alone, so a shard plans its memory before
 * building the one optimizer it uses.
 */
export const OPTIMIZER_SLOTS: Readonly<Record<OptimizerName, readonly string[]>> = Object.freeze({
  sgd: [],
  momentum: ['accumulation'],
  adam: ['m', 'v'],
  adagrad: ['accumulator'],
});

export interface ServerOptimizer {
  readonly name: OptimizerName;
  readonly settings: OptimizerSettings;
  /** Per-variable state arrays, e.g. ["m", "v"] for Adam. */
  readonly slotNames: readonly string[];
  /** Where its update loops run: WebAssembly SIMD over a shard's arena, or JavaScript. */
  readonly kernels: KernelKind;
  /** A fresh slot for a variable part of `size` elements (in the arena, when there is one). */
  initSlot(slot: string, size: number): Float32Array;
  /** Apply `grad` to `value` (and its slots) in place. */
  apply(value: Float32Array, grad: Float32Array, slots: readonly Float32Array[]): void;
  /**
   * Whether apply(value, grad, slots) would leave the value and every slot
   * finite, from the update's WebAssembly twin (wasm-kernels.ts,
   * finiteTwin), which does the same float32 operations and stores nothing;
   * undefined where the loops are JavaScript (the caller then checks a copy).
   */
  staysFinite(value: Float32Array, grad: Float32Array, slots: readonly Float32Array[]): boolean | undefined;
  /** Called once after every part of a step has been applied. */
  endStep(): void;
  /** State shared by all variables (Adam's β powers), for checkpoints. */
  globalState(): Record<string, number>;
  restoreGlobalState(state: Record<string, number>): void;
}
