/**
 * Error feedback (Seide et al. 2014; Karimireddy et al. 2019): a lossy codec
 * drops part of each gradient; the sender keeps what was dropped and adds it
 * to the next gradient of the same tensor, so nothing is lost, only delayed.
 */
export class ErrorFeedback {
  private readonly residuals = new Map<string, Float32Array>();

  /** `grad` plus what earlier sends of `key` lost, as a new array (`grad` is left alone). */
  compensate(key: string, grad: Float32Array): Float32Array {
    const out = Float32Array.from(grad);
    const r = this.residuals.get(key);
    if (r !== undefined && r.length === out.length) for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + (r[i] as number);
    return out;
  }

  /** After sending `compensated` as `decoded` (what the receiver will read): keep the difference. */
  remember(key: string, compensated: Float32Array, decoded: Float32Array): void {
    let r = this.residuals.get(key);
    if (r === undefined || r.length !== compensated.length) {
      r = new Float32Array(compensated.length);
      this.residuals.set(key, r);
    }
    for (let i = 0; i < r.length; i++) r[i] = (compensated[i] as number) - (decoded[i] as number);
  }

  /** What `key` still owes the receiver (zeros if nothing). */
  residual(key: string): Float32Array | undefined {
    return this.residuals.get(key);
  }

  /** Forget everything (after a rollback to a checkpoint the residuals belong to a discarded past). */
  reset(): void {
    this.residuals.clear();
  }
}
