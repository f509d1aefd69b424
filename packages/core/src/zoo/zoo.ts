import type { LayersModel } from '@tensorflow/tfjs-layers';
import { ModelError } from '../errors.js';
import { lenet300100, lenet5, mlpTiny } from './lenet.js';
import { shapesDetector } from './detector.js';

export type ModelTask = 'classification' | 'detection';

export interface ZooEntry {
  readonly name: string;
  readonly description: string;
  readonly task: ModelTask;
  /** Input shape of one sample. */
  readonly inputShape: readonly number[];
  readonly parameters: number;
  readonly create: (seed: number) => LayersModel;
}

const entries: ZooEntry[] = [
  {
    name: 'lenet-300-100',
    description: 'dense 784-300-100-10 (MNIST-shaped input [N, 784])',
    task: 'classification',
    inputShape: [784],
    parameters: 266_610,
    create: lenet300100,
  },
  {
    name: 'lenet-5',
    description: 'Caffe LeNet-5: conv 20@5x5, pool, conv 50@5x5, pool, dense 500, dense 10 (input [N, 28, 28, 1])',
    task: 'classification',
    inputShape: [28, 28, 1],
    parameters: 431_080,
    create: lenet5,
  },
  {
    name: 'mlp-tiny',
    description: 'dense 784-32-10, for tests and smoke runs (input [N, 784])',
    task: 'classification',
    inputShape: [784],
    parameters: 25_450,
    create: mlpTiny,
  },
  {
    name: 'shapes-detector',
    description: 'single-shot detector for the shapes scenes: five 3x3 convs (three with stride 2), a 1x1 head; input [N, 96, 96, 3], output a 12x12 grid of objectness, box and 3 classes',
    task: 'detection',
    inputShape: [96, 96, 3],
    parameters: 97_960,
    create: shapesDetector,
  },
];

/** The model zoo, by name. */
export const ZOO: ReadonlyMap<string, ZooEntry> = new Map(entries.map((e) => [e.name, e]));

/** The zoo's model names, in the zoo's order (help texts and messages list them from here). */
export function zooNames(): string[] {
  return [...ZOO.keys()];
}

export function zooEntry(name: string): ZooEntry {
  const entry = ZOO.get(name);
  if (entry === undefined) {
    throw new ModelError('MODEL_UNKNOWN', `"${name}" is not a zoo model: the zoo has ${zooNames().join(', ')} (tamp train --model also takes the path of a model.json)`);
  }
  return entry;
}

/** A freshly initialised zoo model; the same seed gives the same weights. */
export function createModel(name: string, options: { seed?: number } = {}): LayersModel {
  return zooEntry(name).create(options.seed ?? 1);
}

export function isZooModel(name: string): boolean {
  return ZOO.has(name);
}
