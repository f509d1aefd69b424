/**
 * Error feedback (Seide et al. 2014; Karimireddy et al. 2019): a lossy codec
 * drops part of each gradient; the sender keeps what was dropped and adds it
 * to the next gradient of the same tensor, so nothing is lost, only delayed.
 * int8 and int4 do the adding and the keeping inside their quantizing pass
 * (blocks.ts, `QuantizeWith`); this holds what each tensor owes between sends.
 */
export class ErrorFeedback {
  private readonly residuals = new Map<string, Float32Array>();

  /** After a send that wrote what it lost to `next`: keep it as what `key` owes. */
  keep(key: string, next: Float32Array): void {
    this.residuals.set(key, next);
  }

  /** What `key` still owes the receiver (undefined: nothing yet). */
  residual(key: string): Float32Array | undefined {
    return this.residuals.get(key);
  }

  /** Forget everything (after a rollback to a checkpoint the residuals belong to a discarded past). */
  reset(): void {
    this.residuals.clear();
  }
}
