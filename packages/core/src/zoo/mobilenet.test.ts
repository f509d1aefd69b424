import { describe, expect, it } from 'vitest';
import '@tensorflow/tfjs-backend-cpu';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { ModelError } from '../errors.js';
import { makeDivisible, mobilenetV2 } from './mobilenet.js';
import { MOBILENET_DETECTOR_0_75, shapesMobilenetDetector } from './mobilenet-detector.js';
import { resnet20 } from './resnet.js';
import { ZOO_PATTERNS, createModel, isZooModel, zooEntry, zooNames } from './zoo.js';

function classes(model: LayersModel): Set<string> {
  return new Set(model.layers.map((l) => l.getClassName()));
}

describe('MobileNetV2, ResNet-20 and the MobileNet detector in the zoo', () => {
  it('builds MobileNetV2 1.0 at 224 with 1000 classes with exactly Keras Applications\' 3,538,984 parameters', () => {
    const m = mobilenetV2({ alpha: 1, inputSize: 224, classes: 1000 });
    expect(m.countParams()).toBe(3_538_984);
    expect(m.outputs[0]?.shape).toEqual([null, 1000]);
    m.dispose();
  });

  it('rounds channels as Keras does', () => {
    expect([32 * 0.35, 16 * 0.35, 24 * 0.35, 96 * 0.35, 320 * 0.35].map((v) => makeDivisible(v))).toEqual([16, 8, 8, 32, 112]);
  });

  it('parses mobilenet-v2-<alpha>-<size> names: input size from the name, parameters from alpha', () => {
    const e = zooEntry('mobilenet-v2-0.35-96');
    expect(e.inputShape).toEqual([96, 96, 3]);
    expect(e.task).toBe('classification');
    expect(e.parameters).toBe(423_018);
    expect(zooEntry('mobilenet-v2-0.35-32').parameters).toBe(423_018);
    const m = createModel('mobilenet-v2-0.35-32', { seed: 3 });
    expect(m.name).toBe('mobilenet-v2-0.35-32');
    expect(m.countParams()).toBe(423_018);
    expect(m.inputs[0]?.shape).toEqual([null, 32, 32, 3]);
    expect(m.outputs[0]?.shape).toEqual([null, 10]);
    expect(classes(m)).toEqual(new Set(['InputLayer', 'Conv2D', 'BatchNormalization', 'ReLU', 'ZeroPadding2D', 'DepthwiseConv2D', 'Add', 'GlobalAveragePooling2D', 'Dense']));
    expect(m.getLayer('block_16_project').outputShape).toEqual([null, 1, 1, 112]);
    expect(m.getLayer('Conv_1').outputShape).toEqual([null, 1, 1, 1280]);
    m.dispose();
    expect(isZooModel('mobilenet-v2-1.0-224')).toBe(true);
    expect(isZooModel('mobilenet-v2-0.35-96/model.json')).toBe(false);
  });

  it('refuses mobilenet-v2 settings out of range with a typed error saying what it takes', () => {
    expect(isZooModel('mobilenet-v2-0.35-16')).toBe(true);
    expect(() => zooEntry('mobilenet-v2-0.35-16')).toThrow(ModelError);
    expect(() => zooEntry('mobilenet-v2-0.35-16')).toThrow(/input size from 32 to 512/);
    expect(() => zooEntry('mobilenet-v2-0-96')).toThrow(/0 < alpha <= 4/);
  });

  it('lists the pattern with the fixed names', () => {
    expect(zooNames()).toEqual(expect.arrayContaining(['resnet-20', 'mobilenet-tiny', 'shapes-mobilenet-detector', 'mobilenet-v2-<alpha>-<size>']));
    expect(() => zooEntry('resnet-50')).toThrow(/mobilenet-v2-<alpha>-<size>/);
    for (const p of ZOO_PATTERNS) for (const name of p.examples) expect(p.regex.test(name), name).toBe(true);
  });

  it('builds ResNet-20: 20 weighted layers, projections only where the shape changes, 274,042 parameters', () => {
    const m = createModel('resnet-20', { seed: 1 });
    expect(m.countParams()).toBe(274_042);
    // Trainable: the He et al. count (0.27M) with batch norm's gammas and betas.
    expect(m.countParams() - m.nonTrainableWeights.reduce((n, w) => n + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0)).toBe(272_474);
    const convs = m.layers.filter((l) => l.getClassName() === 'Conv2D').map((l) => l.name);
    expect(convs.filter((n) => !n.endsWith('_0_conv'))).toHaveLength(19); // + the dense layer = 20
    expect(convs.filter((n) => n.endsWith('_0_conv'))).toEqual(['conv3_block1_0_conv', 'conv4_block1_0_conv']);
    expect(m.getLayer('conv2_block3_out').outputShape).toEqual([null, 32, 32, 16]);
    expect(m.getLayer('conv3_block3_out').outputShape).toEqual([null, 16, 16, 32]);
    expect(m.getLayer('conv4_block3_out').outputShape).toEqual([null, 8, 8, 64]);
    expect(classes(m)).toEqual(new Set(['InputLayer', 'Conv2D', 'BatchNormalization', 'Activation', 'Add', 'GlobalAveragePooling2D', 'Dense']));
    m.dispose();
    expect(resnet20({ inputSize: 16, width: 4, blocksPerStage: 1, channels: 1 }).outputs[0]?.shape).toEqual([null, 10]);
  });

  it('builds the MobileNet detector with shapes-detector\'s input and output grid, and SSD-lite head layers', () => {
    const m = createModel('shapes-mobilenet-detector', { seed: 1 });
    expect(m.inputs[0]?.shape).toEqual([null, 96, 96, 3]);
    expect(m.outputs[0]?.shape).toEqual([null, 12, 12, 8]);
    expect(m.countParams()).toBe(18_440);
    expect(m.countParams()).toBe(zooEntry('shapes-mobilenet-detector').parameters);
    expect(m.getLayer('Conv1').outputShape).toEqual([null, 48, 48, 16]); // alpha 0.35: 32 x 0.35 rounded up to 16
    expect(m.getLayer('head_sep').outputShape).toEqual([null, 12, 12, 64]);
    // The first version's settings still build it (its benchmark can be reproduced).
    const first = shapesMobilenetDetector(1, MOBILENET_DETECTOR_0_75);
    expect(first.countParams()).toBe(49_824);
    first.dispose();
    expect(m.getLayer('head_sep').getClassName()).toBe('SeparableConv2D');
    expect(m.getLayer('head_depthwise').getClassName()).toBe('DepthwiseConv2D');
    expect(zooEntry('shapes-mobilenet-detector').task).toBe('detection');
    m.dispose();
  });

  it('mobilenet-tiny has two inverted residual blocks, one with a residual add', () => {
    const m = createModel('mobilenet-tiny');
    expect(m.layers.filter((l) => l.getClassName() === 'DepthwiseConv2D')).toHaveLength(2);
    expect(m.layers.filter((l) => l.getClassName() === 'Add').map((l) => l.name)).toEqual(['block_1_add']);
    m.dispose();
  });

  it('new models initialise deterministically under a seed', () => {
    for (const name of ['resnet-20', 'mobilenet-v2-0.35-32', 'shapes-mobilenet-detector']) {
      const w = (seed: number) => {
        const m = createModel(name, { seed });
        const data = Array.from(m.getWeights()[0]?.dataSync() ?? []);
        m.dispose();
        return data;
      };
      expect(w(4), name).toEqual(w(4));
      expect(w(4), name).not.toEqual(w(5));
    }
  });
});
