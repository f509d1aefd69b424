/**
 * MobileNetV2 (Sandler et al. 2018) as Keras Applications builds it: layer
 * names, the width multiplier's channel rounding and the block table follow
 * keras.applications.MobileNetV2, so a Keras user finds the same layers.
 * Differences: the stem conv pads 'same' (no Conv1_pad layer), the head is
 * 10 classes, batch norm keeps tfjs's defaults (momentum 0.99, epsilon 1e-3).
 */
import * as tf from '@tensorflow/tfjs-layers';

/** Keras's _make_divisible: channels rounded to a multiple of 8, never more than 10% below. */
export function makeDivisible(value: number, divisor = 8): number {
  const rounded = Math.max(divisor, Math.floor((value + divisor / 2) / divisor) * divisor);
  return rounded < 0.9 * value ? rounded + divisor : rounded;
}

/** One inverted residual block: output filters (before the width multiplier), stride, expansion. */
export interface BlockSpec {
  readonly filters: number;
  readonly stride: 1 | 2;
  readonly expansion: number;
}

/** MobileNetV2's 17 inverted residual blocks (block_0 ... block_16). */
export const MOBILENET_V2_BLOCKS: readonly BlockSpec[] = [
  { filters: 16, stride: 1, expansion: 1 },
  { filters: 24, stride: 2, expansion: 6 },
  { filters: 24, stride: 1, expansion: 6 },
  { filters: 32, stride: 2, expansion: 6 },
  { filters: 32, stride: 1, expansion: 6 },
  { filters: 32, stride: 1, expansion: 6 },
  { filters: 64, stride: 2, expansion: 6 },
  { filters: 64, stride: 1, expansion: 6 },
  { filters: 64, stride: 1, expansion: 6 },
  { filters: 64, stride: 1, expansion: 6 },
  { filters: 96, stride: 1, expansion: 6 },
  { filters: 96, stride: 1, expansion: 6 },
  { filters: 96, stride: 1, expansion: 6 },
  { filters: 160, stride: 2, expansion: 6 },
  { filters: 160, stride: 1, expansion: 6 },
  { filters: 160, stride: 1, expansion: 6 },
  { filters: 320, stride: 1, expansion: 6 },
];

/** Seeded initialisers, one seed per layer in build order. */
export class Initialisers {
  private next = 0;
  constructor(private readonly seed: number) {}
  he(): ReturnType<typeof tf.initializers.heNormal> {
    return tf.initializers.heNormal({ seed: this.seed + ++this.next });
  }
  glorot(): ReturnType<typeof tf.initializers.glorotUniform> {
    return tf.initializers.glorotUniform({ seed: this.seed + ++this.next });
  }
}

type Sym = tf.SymbolicTensor;

export function batchNorm(name: string, x: Sym): Sym {
  return tf.layers.batchNormalization({ name, epsilon: 1e-3 }).apply(x) as Sym;
}

export function relu6(name: string, x: Sym): Sym {
  return tf.layers.reLU({ name, maxValue: 6 }).apply(x) as Sym;
}

function channels(x: Sym): number {
  return x.shape[x.shape.length - 1] as number;
}

/**
 * Keras's correct_pad for a 3x3 stride-2 'valid' depthwise conv: (0, 1) on
 * even sizes, (1, 1) on odd ones, so the output is ceil(size / 2).
 */
function correctPad(x: Sym): [[number, number], [number, number]] {
  const pad = (size: number): [number, number] => (size % 2 === 0 ? [0, 1] : [1, 1]);
  return [pad(x.shape[1] as number), pad(x.shape[2] as number)];
}

/** Keras's _inverted_res_block: expand 1x1, depthwise 3x3, project 1x1 (linear), add when shapes allow. */
export function invertedResidual(x: Sym, block: BlockSpec, alpha: number, id: number, init: Initialisers): Sym {
  const inChannels = channels(x);
  const pointwise = makeDivisible(Math.trunc(block.filters * alpha));
  let prefix = `block_${id}_`;
  let h = x;
  if (id > 0) {
    h = tf.layers.conv2d({ name: `${prefix}expand`, filters: block.expansion * inChannels, kernelSize: 1, padding: 'same', useBias: false, kernelInitializer: init.he() }).apply(h) as Sym;
    h = relu6(`${prefix}expand_relu`, batchNorm(`${prefix}expand_BN`, h));
  } else {
    prefix = 'expanded_conv_';
  }
  if (block.stride === 2) h = tf.layers.zeroPadding2d({ name: `${prefix}pad`, padding: correctPad(h) }).apply(h) as Sym;
  h = tf.layers.depthwiseConv2d({
    name: `${prefix}depthwise`,
    kernelSize: 3,
    strides: block.stride,
    padding: block.stride === 1 ? 'same' : 'valid',
    useBias: false,
    depthwiseInitializer: init.he(),
  }).apply(h) as Sym;
  h = relu6(`${prefix}depthwise_relu`, batchNorm(`${prefix}depthwise_BN`, h));
  h = tf.layers.conv2d({ name: `${prefix}project`, filters: pointwise, kernelSize: 1, padding: 'same', useBias: false, kernelInitializer: init.he() }).apply(h) as Sym;
  h = batchNorm(`${prefix}project_BN`, h);
  if (inChannels === pointwise && block.stride === 1) h = tf.layers.add({ name: `${prefix}add` }).apply([x, h]) as Sym;
  return h;
}

/** The stem: 3x3 stride-2 conv, batch norm, ReLU6 (Conv1, bn_Conv1, Conv1_relu). */
export function stem(input: Sym, alpha: number, init: Initialisers): Sym {
  const h = tf.layers.conv2d({ name: 'Conv1', filters: makeDivisible(32 * alpha), kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init.he() }).apply(input) as Sym;
  return relu6('Conv1_relu', batchNorm('bn_Conv1', h));
}

export interface MobileNetV2Options {
  /** Width multiplier (Keras's alpha): 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, ... */
  readonly alpha: number;
  /** Input height and width (square). */
  readonly inputSize: number;
  readonly channels?: number;
  readonly classes?: number;
  /** The blocks to build (default all 17); a prefix of MOBILENET_V2_BLOCKS or any other table. */
  readonly blocks?: readonly BlockSpec[];
  readonly seed?: number;
  readonly name?: string;
}

/**
 * MobileNetV2 classifier: stem, inverted residual blocks, Conv_1 (1x1 to
 * 1280 channels, or 1280·alpha when alpha > 1), global average pooling,
 * dense softmax ("predictions").
 */
export function mobilenetV2(options: MobileNetV2Options): tf.LayersModel {
  const { alpha, inputSize } = options;
  const init = new Initialisers(options.seed ?? 1);
  const input = tf.input({ name: 'input', shape: [inputSize, inputSize, options.channels ?? 3] });
  let x = stem(input, alpha, init);
  for (const [id, block] of (options.blocks ?? MOBILENET_V2_BLOCKS).entries()) x = invertedResidual(x, block, alpha, id, init);
  const last = options.blocks === undefined ? (alpha > 1 ? makeDivisible(1280 * alpha) : 1280) : makeDivisible(4 * channels(x));
  x = tf.layers.conv2d({ name: 'Conv_1', filters: last, kernelSize: 1, useBias: false, kernelInitializer: init.he() }).apply(x) as Sym;
  x = relu6('out_relu', batchNorm('Conv_1_bn', x));
  x = tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }).apply(x) as Sym;
  const output = tf.layers.dense({ name: 'predictions', units: options.classes ?? 10, activation: 'softmax', kernelInitializer: init.glorot() }).apply(x) as Sym;
  return tf.model({ name: options.name ?? `mobilenet-v2-${alpha}-${inputSize}`, inputs: input, outputs: output });
}

/**
 * mobilenet-tiny: MobileNetV2's layers at test size (stem, one stride-2
 * block, one block with a residual add, Conv_1 to 4x the last block's channels),
 * 32x32x3: the CI-sized model the issue's tests train, compress and run.
 */
export const MOBILENET_TINY_BLOCKS: readonly BlockSpec[] = [
  { filters: 16, stride: 2, expansion: 1 },
  { filters: 16, stride: 1, expansion: 4 },
];

export function mobilenetTiny(seed: number): tf.LayersModel {
  return mobilenetV2({ alpha: 0.5, inputSize: 32, blocks: MOBILENET_TINY_BLOCKS, seed, name: 'mobilenet-tiny' });
}
