/**
 * Error feedback (Seide et al. 2014; Karimireddy et al. 2019): a lossy codec
 * drops part of each gradient; the sender keeps what was dropped and adds it
 * to the next gradient of the same tensor, so nothing is lost, only delayed.
 * int8 and int4 do the adding and the keeping inside their quantizing pass
 * (blocks.ts, `QuantizeWith`); this holds what each tensor owes between sends.
 */
export class ErrorFeedback {
  private readonly residuals = new Map<string, Float32Array>();
  /** Each key's residual before the last keep, whose values are spent: the next send writes into it (`scratch`). */
  private readonly spares = new Map<string, Float32Array>();

  /**
   * An array of `n` floats for `key`'s next send to write what it loses into:
   * the residual the last keep replaced (its values are spent; the quantizer
   * writes every element), or a new one. Two arrays a tensor take turns, where
   * a new 1 MB array each step cost an allocation and its garbage.
   */
  scratch(key: string, n: number): Float32Array {
    const spare = this.spares.get(key);
    this.spares.delete(key);
    return spare !== undefined && spare.length === n ? spare : new Float32Array(n);
  }

  /** After a send that wrote what it lost to `next`: keep it as what `key` owes. */
  keep(key: string, next: Float32Array): void {
    const old = this.residuals.get(key);
    if (old !== undefined && old !== next) this.spares.set(key, old);
    this.residuals.set(key, next);
  }

  /** What `key` still owes the receiver (undefined: nothing yet). */
  residual(key: string): Float32Array | undefined {
    return this.residuals.get(key);
  }

  /** Forget everything (after a rollback to a checkpoint the residuals belong to a discarded past). */
  reset(): void {
    this.residuals.clear();
    this.spares.clear();
  }
}
