/** A LayersModel's trainable variables as named arrays, and back. */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { ClusterError, type VariableSpec } from '@tamp/core';

export function variableSpecs(model: LayersModel): VariableSpec[] {
  return model.trainableWeights.map((w) => ({ name: w.originalName, shape: [...w.shape] as number[] }));
}

export async function variableValues(model: LayersModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const w of model.trainableWeights) out.set(w.originalName, (await w.read().data()) as Float32Array);
  return out;
}

/** Write whole variables (by name) into the model. */
export function setVariables(model: LayersModel, values: ReadonlyMap<string, Float32Array>): void {
  for (const w of model.trainableWeights) {
    const v = values.get(w.originalName);
    if (v === undefined) throw new ClusterError('UNKNOWN_VARIABLE', `no value for variable "${w.originalName}" (the model and the parameter servers disagree)`);
    const t = tf.tensor(v, w.shape as number[], 'float32');
    w.write(t);
    t.dispose();
  }
}
