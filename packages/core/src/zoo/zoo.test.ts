import { describe, expect, it } from 'vitest';
import '@tensorflow/tfjs-backend-cpu';
import { ModelError } from '../errors.js';
import { ZOO, createModel, zooEntry } from './zoo.js';

describe('model zoo', () => {
  it('builds LeNet-300-100 with 266,610 parameters', () => {
    const m = createModel('lenet-300-100');
    expect(m.countParams()).toBe(266_610);
    expect(m.inputs[0]?.shape).toEqual([null, 784]);
    expect(m.outputs[0]?.shape).toEqual([null, 10]);
    expect(m.trainableWeights.map((w) => w.originalName)).toEqual(['fc1/kernel', 'fc1/bias', 'fc2/kernel', 'fc2/bias', 'fc3/kernel', 'fc3/bias']);
  });

  it('builds Caffe LeNet-5 with 431,080 parameters', () => {
    const m = createModel('lenet-5');
    expect(m.countParams()).toBe(431_080);
    expect(m.inputs[0]?.shape).toEqual([null, 28, 28, 1]);
    expect(m.trainableWeights.map((w) => `${w.originalName}:${w.shape.join('x')}`)).toEqual([
      'conv1/kernel:5x5x1x20', 'conv1/bias:20', 'conv2/kernel:5x5x20x50', 'conv2/bias:50',
      'fc1/kernel:800x500', 'fc1/bias:500', 'fc2/kernel:500x10', 'fc2/bias:10',
    ]);
  });

  it('declares the parameter counts it builds', () => {
    for (const entry of ZOO.values()) expect(entry.create(1).countParams()).toBe(entry.parameters);
  });

  it('initialises deterministically under a seed', () => {
    const a = createModel('lenet-300-100', { seed: 7 }).getWeights()[0]?.dataSync();
    const b = createModel('lenet-300-100', { seed: 7 }).getWeights()[0]?.dataSync();
    const c = createModel('lenet-300-100', { seed: 8 }).getWeights()[0]?.dataSync();
    expect(Array.from(a ?? [])).toEqual(Array.from(b ?? []));
    expect(Array.from(a ?? [])).not.toEqual(Array.from(c ?? []));
  });

  it('refuses unknown names, listing the zoo', () => {
    expect(() => zooEntry('resnet-50')).toThrow(ModelError);
    expect(() => zooEntry('resnet-50')).toThrow(/the zoo has lenet-300-100, lenet-5, mlp-tiny/);
  });
});
