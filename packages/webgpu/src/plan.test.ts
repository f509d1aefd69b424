import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { createModel } from '@tamp/core';
import type { TampTensor } from '@tamp/compress';
import { planModel } from './plan.js';

function weightsOf(model: tfl.LayersModel): TampTensor[] {
  return model.getWeights().map((w, i) => ({ name: model.weights[i]?.originalName ?? `w${i}`, shape: w.shape, encoding: { kind: 'f32', data: w.dataSync() as Float32Array } }));
}

function topologyOf(model: tfl.LayersModel): unknown {
  return JSON.parse(JSON.stringify(model.toJSON(undefined, false)));
}

describe('planModel', () => {
  it('plans LeNet-5: shapes through every layer, softmax split from its dense layer', () => {
    const m = createModel('lenet-5', { seed: 1 });
    const plan = planModel(topologyOf(m), weightsOf(m));
    expect(plan.inputShape).toEqual([28, 28, 1]);
    expect(plan.outputShape).toEqual([10]);
    expect(plan.ops.map((o) => `${o.kind}:${o.name}`)).toEqual(['conv2d:conv1', 'pool:pool1', 'conv2d:conv2', 'pool:pool2', 'dense:fc1', 'dense:fc2', 'activation:fc2/softmax']);
    const conv2 = plan.ops[2];
    expect(conv2?.kind === 'conv2d' && [conv2.inShape, conv2.outShape]).toEqual([[12, 12, 20], [8, 8, 50]]);
    expect(plan.maxActivation).toBe(24 * 24 * 20);
  });

  it("works out TensorFlow's 'same' padding, odd and even", () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [7, 8, 2], filters: 3, kernelSize: 4, strides: 2, padding: 'same' }),
        tfl.layers.maxPooling2d({ poolSize: 3, strides: 3, padding: 'same' }),
      ],
    });
    const plan = planModel(topologyOf(m), weightsOf(m));
    const [conv, pool] = plan.ops;
    // Height 7, stride 2: 4 rows out, (4-1)*2 + 4 - 7 = 3 padding rows, 1 before. Width 8: 4 out, 2 padding, 1 before.
    expect(conv).toMatchObject({ outShape: [4, 4, 3], padTop: 1, padLeft: 1 });
    // 4 by 3 stride 3: 2 out, (2-1)*3 + 3 - 4 = 2 padding, 1 before.
    expect(pool).toMatchObject({ outShape: [2, 2, 3], padTop: 1, padLeft: 1 });
    // And tfjs agrees on the output shape.
    expect(m.outputs[0]?.shape.slice(1)).toEqual([2, 2, 3]);
  });

  it('plans functional models: chains, and residual branches in topological order with numbered tensors', () => {
    const input = tfl.input({ shape: [6] });
    const a = tfl.layers.dense({ units: 4, activation: 'relu' }).apply(input) as tfl.SymbolicTensor;
    const chain = tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 2 }).apply(a) as tfl.SymbolicTensor });
    expect(planModel(topologyOf(chain), weightsOf(chain)).ops.map((o) => o.kind)).toEqual(['dense', 'dense']);

    const b = tfl.layers.dense({ units: 4, name: 'side' }).apply(input) as tfl.SymbolicTensor;
    const sum = tfl.layers.add({ name: 'sum' }).apply([a, b]) as tfl.SymbolicTensor;
    const cat = tfl.layers.concatenate({ name: 'cat' }).apply([sum, input]) as tfl.SymbolicTensor;
    const branched = tfl.model({ inputs: input, outputs: cat });
    const plan = planModel(topologyOf(branched), weightsOf(branched));
    expect(plan.ops.map((o) => o.kind)).toEqual(['dense', 'dense', 'add', 'concat']);
    const [d1, d2, add, concat] = plan.ops;
    expect(d1?.inputs).toEqual([0]);
    expect(d2?.inputs).toEqual([0]);
    expect(add?.inputs).toEqual([d1?.output, d2?.output]);
    expect(concat?.inputs).toEqual([add?.output, 0]);
    expect(concat).toMatchObject({ outer: 1, widths: [4, 6] });
    expect(plan.output).toBe(concat?.output);
    expect(plan.outputShape).toEqual([10]);
  });

  it('plans MobileNet- and ResNet-style layers with their shapes', () => {
    const input = tfl.input({ shape: [9, 9, 3] });
    let x = tfl.layers.zeroPadding2d({ padding: [[1, 0], [0, 1]] }).apply(input) as tfl.SymbolicTensor;
    x = tfl.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, useBias: false }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.batchNormalization().apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.reLU({ maxValue: 6 }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.separableConv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.upSampling2d({ size: [2, 3] }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.globalAveragePooling2d({}).apply(x) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: input, outputs: x });
    const plan = planModel(topologyOf(m), weightsOf(m));
    expect(plan.ops.map((o) => o.kind)).toEqual(['pad', 'conv2d', 'batchnorm', 'activation', 'depthwise', 'depthwise', 'conv2d', 'upsample', 'globalpool']);
    expect(plan.ops[0]).toMatchObject({ outShape: [10, 10, 3], padTop: 1, padLeft: 0 });
    expect(plan.ops[4]).toMatchObject({ outShape: [4, 4, 8], multiplier: 2 });
    expect(plan.ops[6]).toMatchObject({ kind: 'conv2d', outShape: [2, 2, 5], activation: 'relu' });
    expect(plan.ops[7]).toMatchObject({ outShape: [4, 6, 5] });
    expect(plan.outputShape).toEqual(m.outputs[0]?.shape.slice(1));
  });

  it('checks every weight against its layer, and the count', () => {
    const m = createModel('mlp-tiny', { seed: 1 });
    const w = weightsOf(m);
    expect(() => planModel(topologyOf(m), w.slice(0, 3))).toThrow(/needs a bias of shape \[10\], but the model has only 3 weights/);
    expect(() => planModel(topologyOf(m), [...w, w[0] as TampTensor])).toThrow(/the layers use 4 weights, the model holds 5/);
    const transposed = w.map((t, i) => (i === 0 ? { ...t, shape: [32, 784] } : t));
    expect(() => planModel(topologyOf(m), transposed)).toThrow(/layer "fc1": its kernel "fc1\/kernel" has shape \[32,784\], expected \[784,32\]/);
  });

  it('names the unsupported layer or activation and lists what runs', () => {
    const m = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [3], units: 2, activation: 'softplus' })] });
    expect(() => planModel(topologyOf(m), weightsOf(m))).toThrow(/layer ".+" \(Dense\) uses the activation "softplus".*activations linear, relu/);
    const t = tfl.sequential({ layers: [tfl.layers.conv2dTranspose({ inputShape: [5, 5, 1], filters: 1, kernelSize: 2, name: 'up' })] });
    expect(() => planModel(topologyOf(t), weightsOf(t))).toThrow(/layer "up" is a Conv2DTranspose\. The inference engine runs these layers: .*DepthwiseConv2D/);
    const d = tfl.sequential({ layers: [tfl.layers.conv2d({ inputShape: [5, 5, 1], filters: 1, kernelSize: 2, dilationRate: 2 })] });
    expect(() => planModel(topologyOf(d), weightsOf(d))).toThrow(/uses dilation 2x2/);
    try {
      planModel(topologyOf(d), weightsOf(d));
    } catch (error) {
      expect((error as { code?: string }).code).toBe('MODEL_UNSUPPORTED');
    }
  });
});
