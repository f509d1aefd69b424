/**
 * A worker's gradient encoder for its job's push codec, one state per part
 * (a variable, or the slice of it one shard holds):
 *  - fp32 and fp16: each gradient as it is (fp16's rounding is below what
 *    training notices);
 *  - int8 and int4: error feedback (core's ErrorFeedback): what rounding
 *    lost is added to the part's next gradient;
 *  - topk:F: Deep Gradient Compression's sender (core's DgcSender): the
 *    largest F of the accumulated gradient, the rest kept for later, dense
 *    at first and reaching F over `warmupSteps`; with `momentum` (DGC's
 *    momentum correction, the job's momentum factor) the velocity is kept
 *    here and pushes are marked momentum-corrected, which the shards apply
 *    with plain SGD. Biases (parts of rank 1 or less) go whole, as half
 *    values without positions, unless `sparseBiases`: DGC's reference
 *    implementation compresses only tensors of more than one dimension, and
 *    they are a sliver of the bytes (ARCHITECTURE.md, the wire section).
 * With `adam` (the Adam correction) and top-k, Adam's moments are kept here
 * (core's AdamDirection), top-k sends Adam's accumulated update direction,
 * and pushes are marked Adam-corrected, which the shards apply with plain
 * SGD (ARCHITECTURE.md, the wire section). Other codecs push the plain
 * gradient whatever `adam` says: the shards apply Adam to it as usual.
 * Encoding happens once per step, before any retry, so a retried push
 * resends the same bytes and the state sees each gradient exactly once.
 */
import {
  AdamDirection,
  DgcSender,
  type EncodedTensor,
  ErrorFeedback,
  type WireCodec,
  type WireTensor,
  bytesOf,
  INT4_BLOCK,
  INT8_BLOCK,
  decodeTopk,
  encodeFp16,
  encodeInt4,
  encodeInt8,
  partKey,
} from '@tamp/core/base';

export interface PushEncoderOptions {
  readonly codec: WireCodec;
  /** Steps over which top-k density falls from dense to its fraction (DGC's warm-up; default 0). */
  readonly warmupSteps?: number;
  /** Keep what int8, int4 and top-k drop for the next step (default true; off only to measure what it buys). */
  readonly errorFeedback?: boolean;
  /** topk: DGC's momentum correction with this momentum factor (default 0: off, the servers keep the momentum). */
  readonly momentum?: number;
  /** topk: the Adam correction with the job's Adam settings (default: off, the servers keep both of Adam's moments); other codecs ignore it. */
  readonly adam?: AdamMoments;
  /** topk: sparsify biases (rank 0 or 1) like every other part (default false: they go whole; only to measure what that buys). */
  readonly sparseBiases?: boolean;
}

/** The job's Adam settings a worker's Adam correction needs. */
export interface AdamMoments {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
}

export class PushEncoder {
  readonly codec: WireCodec;
  private readonly feedback: ErrorFeedback | undefined;
  private readonly dgc: DgcSender | undefined;
  private readonly keep: boolean;
  private readonly adam: AdamDirection | undefined;
  private readonly sparseBiases: boolean;
  /** Pushes carry DGC's momentum-corrected accumulation (PushRequest.momentum_corrected). */
  readonly momentumCorrected: boolean;
  /** Pushes carry the top-k of Adam's accumulated direction (PushRequest.adam_corrected). */
  readonly adamCorrected: boolean;

  constructor(options: PushEncoderOptions) {
    this.codec = options.codec;
    const keep = options.errorFeedback ?? true;
    this.feedback = (options.codec.kind === 'int8' || options.codec.kind === 'int4') && keep ? new ErrorFeedback() : undefined;
    const momentum = options.codec.kind === 'topk' ? (options.momentum ?? 0) : 0;
    this.dgc = options.codec.kind === 'topk' ? new DgcSender({ fraction: options.codec.fraction, momentum, warmupSteps: options.warmupSteps ?? 0 }) : undefined;
    this.momentumCorrected = momentum > 0;
    const adam = options.codec.kind === 'topk' ? options.adam : undefined;
    this.adam = adam !== undefined ? new AdamDirection(adam.beta1, adam.beta2, adam.epsilon) : undefined;
    this.adamCorrected = this.adam !== undefined;
    this.keep = keep;
    this.sparseBiases = options.sparseBiases === true;
  }

  /** Encode one step's parts (float32 gradients) for the wire. */
  encode(parts: readonly WireTensor[], step: bigint): EncodedTensor[] {
    return parts.map((t) => {
      const g = t.data as Float32Array;
      const base = { name: t.name, shape: t.shape, sliceStart: t.sliceStart, length: g.length };
      const key = partKey(t.name, t.sliceStart);
      switch (this.codec.kind) {
        case 'fp32':
          return { ...base, codec: 'fp32', bytes: bytesOf(g) };
        case 'fp16':
          return { ...base, codec: 'fp16', bytes: encodeFp16(g) };
        case 'int8':
        case 'int4': {
          const kind = this.codec.kind;
          if (this.feedback === undefined) return { ...base, codec: kind, bytes: kind === 'int8' ? encodeInt8(g) : encodeInt4(g) };
          // Error feedback in the quantizer's own pass: code g + owed, write what is lost to `next`, keep it once encoded.
          const owed = this.feedback.residual(key);
          const feedback = { ...(owed !== undefined && owed.length === g.length ? { owed } : {}), next: this.feedback.scratch(key, g.length) };
          const bytes = kind === 'int8' ? encodeInt8(g, INT8_BLOCK, feedback) : encodeInt4(g, INT4_BLOCK, feedback);
          this.feedback.keep(key, feedback.next);
          return { ...base, codec: kind, bytes };
        }
        case 'topk': {
          const dgc = this.dgc as DgcSender;
          // AdamDirection's array is its own, overwritten by this part's next step: encode reads it at once.
          const whole = !this.sparseBiases && t.shape.length <= 1;
          const bytes = dgc.encode(key, this.adam === undefined ? g : this.adam.direction(key, g), Number(step), whole);
          // Without error feedback, what was not sent is forgotten (the velocity too).
          if (!this.keep) dgc.reset();
          // Dense top-k (the warm-up, a bias) takes 2 bytes a value and 8 of header: a tensor of 4 elements or fewer is smaller as the same values in fp32.
          if (bytes.length >= 4 * g.length) return { ...base, codec: 'fp32', bytes: bytesOf(decodeTopk(bytes, g.length, t.name)) };
          return { ...base, codec: 'topk', bytes };
        }
      }
    });
  }

  /**
   * Forget what is owed (after a rollback to a checkpoint it belongs to a
   * discarded past). The Adam correction's moments are kept, as a
   * restored shard keeps its own Adam slots: nothing of them is owed.
   */
  reset(): void {
    this.feedback?.reset();
    this.dgc?.reset();
  }
}
