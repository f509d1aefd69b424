/**
 * A job's variables as the shards hold them (core's placement): whole
 * gradients cut into the parts each shard takes, and the parts pulled from
 * every shard put back together into whole variables. ParameterClient sends
 * and receives through these.
 */
import { ClusterError, InvalidArgumentError, type Placement, type VariablePart, type WireTensor, partKey, sizeOfShape } from '@tamp/core/base';

function partsOf(placement: Placement, index: number): readonly VariablePart[] {
  const parts = placement.shards[index];
  if (parts === undefined) throw new InvalidArgumentError(`no shard ${index} in a placement over ${placement.shards.length} shards`);
  return parts;
}

/** The tensors shard `index` expects, cut (as views) from whole gradients. */
export function splitGradients(placement: Placement, index: number, grads: ReadonlyMap<string, Float32Array>): WireTensor[] {
  return partsOf(placement, index).map((p) => {
    const g = grads.get(p.name);
    if (g === undefined) throw new InvalidArgumentError(`push: no gradient for "${p.name}" (the model's variables differ from the job's placement)`);
    const size = sizeOfShape(p.shape);
    if (g.length !== size) throw new ClusterError('SHAPE_MISMATCH', `push: gradient "${p.name}" has ${g.length} elements, its variable [${p.shape.join(',')}] ${size}`);
    return { name: p.name, shape: p.shape, dtype: 'float32', data: g.subarray(p.sliceStart, p.sliceStart + p.sliceLength), sliceStart: p.sliceStart };
  });
}

const describe = (p: { name: string; sliceStart: number }) => `"${p.name}" from element ${p.sliceStart}`;

/**
 * Whole variables from what each shard sent (`pulled[i]`: shard i's
 * tensors). Every shard must send exactly the parts the placement gives it;
 * a variable held whole is used as received, a split one is copied into
 * place.
 */
export function reassembleVariables(placement: Placement, pulled: ReadonlyArray<readonly WireTensor[]>): Map<string, Float32Array> {
  if (pulled.length !== placement.shards.length) {
    throw new ClusterError('CLUSTER_CONFIG', `pull: ${pulled.length} shards answered a placement over ${placement.shards.length}`);
  }
  const values = new Map<string, Float32Array>();
  pulled.forEach((tensors, index) => {
    const expected = new Map(partsOf(placement, index).map((p) => [partKey(p.name, p.sliceStart), p]));
    for (const t of tensors) {
      const key = partKey(t.name, t.sliceStart);
      const part = expected.get(key);
      if (part === undefined || part.sliceLength !== t.data.length) {
        throw new ClusterError('UNKNOWN_VARIABLE', `pull: shard ${index} sent ${describe(t)} (${t.data.length} elements), which the placement does not give it; check the order of the ps addresses`);
      }
      expected.delete(key);
      const size = sizeOfShape(part.shape);
      const data = t.data as Float32Array;
      if (part.sliceLength === size) {
        values.set(t.name, data); // whole variable: no reassembly
        continue;
      }
      let target = values.get(t.name);
      if (target === undefined) {
        target = new Float32Array(size);
        values.set(t.name, target);
      }
      target.set(data, t.sliceStart);
    }
    if (expected.size > 0) {
      throw new ClusterError('CLUSTER_CONFIG', `pull: shard ${index} did not send ${[...expected.values()].map(describe).join(', ')}; check the order of the ps addresses`);
    }
  });
  return values;
}
