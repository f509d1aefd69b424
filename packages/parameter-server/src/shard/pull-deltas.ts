/**
 * int8 and int4 pulls (the server-side compression of DoubleSqueeze and
 * BytePS): a worker receives the change since its last pull, quantized to
 * int8 or int4, and the
 * server keeps, per worker, exactly the values that worker now holds (its
 * reference). What rounding lost stays in (live − reference) and travels in
 * the next pull, so nothing drifts: the worker's copy follows the live values
 * within one pull's rounding, forever.
 *
 * Both ends add the same decoded float32 change to the same float32
 * reference, so they stay bit-identical. Each answer has a sequence number; a
 * worker names the last one it completed (`base_pull`), and any mismatch (a
 * lost answer, a restarted worker, a new assign) gets the whole values in
 * fp32, which reset the reference.
 */
import { type DeltaPullKind, type EncodedTensor, type WireTensor, bytesOf, encodeInt4Change, encodeInt8Change, partKey } from '@tamp/core/base';

interface WorkerReference {
  seq: bigint;
  readonly values: Map<string, Float32Array>;
}

export class PullDeltas {
  private readonly workers = new Map<string, WorkerReference>();
  private nextSeq = 1n;

  /** Forget every reference (a new assign: the values they followed are gone). */
  clear(): void {
    this.workers.clear();
  }

  /**
   * Encode `parts` (the live values) for `workerId`, whose last completed
   * pull is `basePull`: `kind` changes where the reference matches, fp32
   * values elsewhere. Updates the reference as if the answer arrived (if it
   * does not, the worker's next base_pull will not match).
   */
  encode(workerId: string, parts: readonly WireTensor[], basePull: bigint, kind: DeltaPullKind): { seq: bigint; tensors: EncodedTensor[] } {
    let ref = this.workers.get(workerId);
    if (ref === undefined || basePull === 0n || ref.seq !== basePull) {
      ref = { seq: 0n, values: new Map() };
      this.workers.set(workerId, ref);
    }
    const tensors: EncodedTensor[] = [];
    for (const part of parts) {
      const live = part.data as Float32Array;
      const key = partKey(part.name, part.sliceStart);
      const base = { name: part.name, shape: part.shape, sliceStart: part.sliceStart, length: live.length };
      const held = ref.values.get(key);
      if (held === undefined || held.length !== live.length) {
        const copy = live.slice();
        ref.values.set(key, copy);
        tensors.push({ ...base, codec: 'fp32', bytes: bytesOf(copy) });
        continue;
      }
      // Moves `held` by what the worker will decode, added exactly as it will add it.
      const bytes = kind === 'int8' ? encodeInt8Change(live, held) : encodeInt4Change(live, held);
      tensors.push({ ...base, codec: kind, bytes });
    }
    ref.seq = this.nextSeq++;
    return { seq: ref.seq, tensors };
  }
}
