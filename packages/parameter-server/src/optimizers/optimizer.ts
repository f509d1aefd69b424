/**
 * Server-side optimizers. Each applies one gradient to one variable part in
 * place, emulating tfjs's float32 arithmetic op by op (Math.fround after each
 * operation, in tfjs's order), so a shard's variables match what
 * tf.train.<optimizer> computes for the same gradients.
 */
import type { OptimizerName, OptimizerSettings } from '@tamp/core';

export interface ServerOptimizer {
  readonly name: OptimizerName;
  readonly settings: OptimizerSettings;
  /** Per-variable state arrays, e.g. ["m", "v"] for Adam. */
  readonly slotNames: readonly string[];
  /** A fresh slot for a variable part of `size` elements. */
  initSlot(slot: string, size: number): Float32Array;
  /** Apply `grad` to `value` (and its slots) in place. */
  apply(value: Float32Array, grad: Float32Array, slots: readonly Float32Array[]): void;
  /** Called once after every part of a step has been applied. */
  endStep(): void;
  /** State shared by all variables (Adam's β powers), for checkpoints. */
  globalState(): Record<string, number>;
  restoreGlobalState(state: Record<string, number>): void;
}
