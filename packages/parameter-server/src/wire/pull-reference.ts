/**
 * A worker's side of int8 and int4 pulls (the server's is
 * shard/pull-deltas.ts): the values it holds of one shard and the sequence
 * number of the pull that brought them. An fp32 tensor replaces a part's
 * values; an int8 or int4 tensor is a change, added exactly as the server
 * added it to its copy.
 */
import { CodecError, type WireTensor, addFloats, isDeltaPull, partKey } from '@tamp/core/base';

export class PullReference {
  private values = new Map<string, Float32Array>();
  /** The last completed pull's sequence number (0: none), sent as base_pull. */
  seq = 0n;

  /**
   * Apply one answer (`tensors` as assembled: a change's data is its
   * decoder's own array, which this overwrites) and return the values as
   * new arrays (the caller may transfer them).
   */
  apply(seq: bigint, tensors: readonly WireTensor[]): WireTensor[] {
    const next = new Map(this.values);
    const out: WireTensor[] = [];
    for (const t of tensors) {
      const key = partKey(t.name, t.sliceStart);
      const data = t.data as Float32Array;
      let held: Float32Array;
      if (t.codec !== undefined && isDeltaPull(t.codec)) {
        const old = next.get(key);
        if (old === undefined || old.length !== data.length) {
          // The server sends a change only when base_pull matched its record of this worker, which holds every part.
          throw new CodecError('CHUNK_INVALID', `pull: "${t.name}" came as a change to values this worker does not hold; the server's record of its pulls disagrees`, t.name);
        }
        // The decoded change is this pull's own array: the sum goes into it (a 1 MB allocation less a step).
        addFloats(data, old);
        held = data;
      } else {
        held = data.slice();
      }
      next.set(key, held);
      out.push({ name: t.name, shape: t.shape, dtype: 'float32', data: held.slice(), sliceStart: t.sliceStart });
    }
    // Only a whole, consistent answer moves the reference.
    this.values = next;
    this.seq = seq;
    return out;
  }
}
