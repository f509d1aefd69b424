import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import type { TampTensor } from '@tamp/compress';
import { planModel } from '../plan.js';
import { fusePlan } from './fuse.js';
import { assignSlots } from './liveness.js';

function planOf(model: tfl.LayersModel) {
  const weights: TampTensor[] = model.getWeights().map((w, i) => ({ name: model.weights[i]?.originalName ?? `w${i}`, shape: w.shape, encoding: { kind: 'f32', data: w.dataSync() as Float32Array } }));
  return planModel(JSON.parse(JSON.stringify(model.toJSON(undefined, false))), weights);
}

describe('activation buffers by liveness', () => {
  it('a chain of eight layers needs two buffers; a residual block a third while its shortcut is live', () => {
    const chain = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [8], units: 16 }), ...Array.from({ length: 7 }, (_, i) => tfl.layers.dense({ units: 16 - i }))] });
    const plan = planOf(chain);
    const steps = fusePlan(plan);
    const slots = assignSlots(plan, steps);
    expect(plan.tensorSizes).toHaveLength(9);
    expect(slots.sizes).toHaveLength(2);
    // Neighbours never share a buffer (a dispatch never reads and writes one buffer).
    for (const s of steps) for (const t of s.inputs) expect(slots.slotOf.get(t)).not.toBe(slots.slotOf.get(s.output));

    const input = tfl.input({ shape: [6, 6, 4] });
    const a = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input) as tfl.SymbolicTensor;
    const b = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(a) as tfl.SymbolicTensor;
    const c = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(b) as tfl.SymbolicTensor;
    const sum = tfl.layers.reLU().apply(tfl.layers.add().apply([c, a]) as tfl.SymbolicTensor) as tfl.SymbolicTensor;
    const out = tfl.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(sum) as tfl.SymbolicTensor;
    const residual = planOf(tfl.model({ inputs: input, outputs: out }));
    const fused = fusePlan(residual);
    // The Add and its ReLU join the third convolution, which reads the shortcut as its residual.
    expect(fused.map((s) => s.op.kind)).toEqual(['conv2d', 'conv2d', 'conv2d', 'conv2d']);
    expect(fused[2]?.residual).toBe(fused[0]?.output);
    expect(fused[2]?.activation).toBe('relu');
    const r = assignSlots(residual, fused);
    expect(r.sizes).toHaveLength(3);
    for (const s of fused) for (const t of s.inputs) expect(r.slotOf.get(t)).not.toBe(r.slotOf.get(s.output));
  });
});
