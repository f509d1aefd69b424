import type { LayersModel } from '@tensorflow/tfjs-layers';
import { ModelError } from '../errors.js';
import { lenet300100, lenet5, mlpTiny } from './lenet.js';
import { shapesDetector } from './detector.js';
import { shapesMobilenetDetector } from './mobilenet-detector.js';
import { mobilenetTiny, mobilenetV2 } from './mobilenet.js';
import { resnet20 } from './resnet.js';

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
  {
    name: 'shapes-mobilenet-detector',
    description: 'single-shot detector for the shapes scenes on a MobileNetV2 backbone (alpha 0.35, block_0-5, stride 8) with an SSD-lite head (separable 3x3 64, depthwise 3x3, 1x1); same input and 12x12 output grid as shapes-detector',
    task: 'detection',
    inputShape: [96, 96, 3],
    parameters: 18_440,
    create: shapesMobilenetDetector,
  },
  {
    name: 'resnet-20',
    description: 'CIFAR ResNet-20 (He et al. 2016): 3x3 conv 16, 3 stages x 3 basic blocks (16/32/64, batch norm, projection shortcuts where the shape changes), global average pooling, dense 10 (input [N, 32, 32, 3]; 28x28 grey data is padded to 32 and repeated over 3 channels)',
    task: 'classification',
    inputShape: [32, 32, 3],
    parameters: 274_042,
    create: (seed) => resnet20({ seed }),
  },
  {
    name: 'mobilenet-tiny',
    description: 'MobileNetV2 layers at test size: stem, a stride-2 inverted residual block and one with a residual add, 1x1 conv, global average pooling, dense 10 (input [N, 32, 32, 3])',
    task: 'classification',
    inputShape: [32, 32, 3],
    parameters: 2_666,
    create: mobilenetTiny,
  },
];

/** A family of zoo models whose name carries its settings. */
export interface ZooPattern {
  /** The name pattern, e.g. "mobilenet-v2-<alpha>-<size>". */
  readonly pattern: string;
  readonly description: string;
  readonly examples: readonly string[];
  /** Names of this family (well-formed; parse still refuses settings out of range). */
  readonly regex: RegExp;
  /** The entry for a name of this family, or undefined when the name is not one. */
  readonly parse: (name: string) => ZooEntry | undefined;
}

const MOBILENET_V2 = /^mobilenet-v2-(\d+(?:\.\d+)?)-(\d+)$/;
/** Input sizes MobileNetV2 takes: it downsamples 32x; past 512 a WASM training step no longer fits a sane memory. */
export const MOBILENET_V2_SIZES = { min: 32, max: 512 } as const;

function mobilenetV2Entry(name: string): ZooEntry | undefined {
  const m = MOBILENET_V2.exec(name);
  if (m === null) return undefined;
  const alpha = Number(m[1]);
  const size = Number(m[2]);
  if (!(alpha > 0 && alpha <= 4) || size < MOBILENET_V2_SIZES.min || size > MOBILENET_V2_SIZES.max) {
    throw new ModelError(
      'MODEL_UNKNOWN',
      `"${name}": mobilenet-v2-<alpha>-<size> takes a width multiplier 0 < alpha <= 4 (e.g. 0.35, 0.5, 1.0) and an input size from ${MOBILENET_V2_SIZES.min} to ${MOBILENET_V2_SIZES.max} (e.g. mobilenet-v2-0.35-96)`,
    );
  }
  const create = (seed: number) => mobilenetV2({ alpha, inputSize: size, seed, name });
  return {
    name,
    description: `MobileNetV2 (Sandler et al. 2018, Keras Applications layout) with width multiplier ${alpha}, input [N, ${size}, ${size}, 3], 10 classes`,
    task: 'classification',
    inputShape: [size, size, 3],
    get parameters() {
      return mobilenetParameters(alpha, size, create);
    },
    create,
  };
}

const parameterCache = new Map<string, number>();

/** Parameter counts depend on alpha only (the input size changes no weight); built once per alpha. */
function mobilenetParameters(alpha: number, size: number, create: (seed: number) => LayersModel): number {
  const key = String(alpha);
  let n = parameterCache.get(key);
  if (n === undefined) {
    const model = create(1);
    n = model.countParams();
    model.dispose();
    parameterCache.set(key, n);
  }
  return n;
}

export const ZOO_PATTERNS: readonly ZooPattern[] = [
  {
    pattern: 'mobilenet-v2-<alpha>-<size>',
    description: 'MobileNetV2 (Keras Applications layout: inverted residual blocks with depthwise 3x3 convs, batch norm, ReLU6) with width multiplier <alpha> and input [N, <size>, <size>, 3], 10 classes',
    examples: ['mobilenet-v2-0.35-32', 'mobilenet-v2-0.35-96', 'mobilenet-v2-1.0-224'],
    regex: MOBILENET_V2,
    parse: mobilenetV2Entry,
  },
];

/** The model zoo, by name. */
export const ZOO: ReadonlyMap<string, ZooEntry> = new Map(entries.map((e) => [e.name, e]));

/** Every zoo name and name pattern, for listings and error messages. */
export function zooNames(): string[] {
  return [...ZOO.keys(), ...ZOO_PATTERNS.map((p) => p.pattern)];
}

/** A zoo entry by name: a fixed entry, or a name of a family (mobilenet-v2-<alpha>-<size>). */
export function zooEntry(name: string): ZooEntry {
  const entry = ZOO.get(name) ?? patternEntry(name);
  if (entry === undefined) {
    throw new ModelError('MODEL_UNKNOWN', `"${name}" is not a zoo model: the zoo has ${zooNames().join(', ')} (tamp train --model also takes the path of a model.json)`);
  }
  return entry;
}

function patternEntry(name: string): ZooEntry | undefined {
  for (const p of ZOO_PATTERNS) {
    const entry = p.parse(name);
    if (entry !== undefined) return entry;
  }
  return undefined;
}

/** A freshly initialised zoo model; the same seed gives the same weights. */
export function createModel(name: string, options: { seed?: number } = {}): LayersModel {
  return zooEntry(name).create(options.seed ?? 1);
}

/** True for zoo names, including names of a family (mobilenet-v2-0.35-96, even with settings zooEntry refuses, so it can say why). */
export function isZooModel(name: string): boolean {
  return ZOO.has(name) || ZOO_PATTERNS.some((p) => p.regex.test(name));
}
