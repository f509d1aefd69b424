/**
 * ResNet-20 for CIFAR-sized inputs (He et al. 2016, section 4.2): a 3x3
 * conv with 16 filters, three stages of three basic blocks (16, 32, 64
 * filters; the first block of stages 2 and 3 has stride 2), global average
 * pooling and a 10-way softmax. Convolutions have no bias (batch norm
 * follows each). Where a block changes shape its shortcut is a projection
 * (option B: 1x1 conv with stride 2 and batch norm), since option A's
 * zero-padded identity has no layer in the Keras/tfjs format; identity
 * shortcuts everywhere else. Layer names follow keras.applications.ResNet
 * (conv2_block1_1_conv, ..., conv2_block1_0_conv for the projection).
 */
import * as tf from '@tensorflow/tfjs-layers';
import { Initialisers, batchNorm } from './mobilenet.js';

type Sym = tf.SymbolicTensor;

export interface ResNet20Options {
  /** Input height and width (default 32). */
  readonly inputSize?: number;
  readonly channels?: number;
  readonly classes?: number;
  /** Filters of the first stage (default 16; then 2x and 4x). */
  readonly width?: number;
  /** Basic blocks per stage (default 3: ResNet-20 = 6·3 + 2 layers). */
  readonly blocksPerStage?: number;
  readonly seed?: number;
  readonly name?: string;
}

function conv(name: string, x: Sym, filters: number, kernelSize: number, strides: number, init: Initialisers): Sym {
  return tf.layers.conv2d({ name, filters, kernelSize, strides, padding: 'same', useBias: false, kernelInitializer: init.he() }).apply(x) as Sym;
}

function relu(name: string, x: Sym): Sym {
  return tf.layers.activation({ name, activation: 'relu' }).apply(x) as Sym;
}

function basicBlock(x: Sym, filters: number, strides: number, prefix: string, init: Initialisers): Sym {
  const inChannels = x.shape[3] as number;
  let h = relu(`${prefix}_1_relu`, batchNorm(`${prefix}_1_bn`, conv(`${prefix}_1_conv`, x, filters, 3, strides, init)));
  h = batchNorm(`${prefix}_2_bn`, conv(`${prefix}_2_conv`, h, filters, 3, 1, init));
  const shortcut = strides !== 1 || inChannels !== filters ? batchNorm(`${prefix}_0_bn`, conv(`${prefix}_0_conv`, x, filters, 1, strides, init)) : x;
  const sum = tf.layers.add({ name: `${prefix}_add` }).apply([shortcut, h]) as Sym;
  return relu(`${prefix}_out`, sum);
}

export function resnet20(options: ResNet20Options = {}): tf.LayersModel {
  const size = options.inputSize ?? 32;
  const width = options.width ?? 16;
  const blocks = options.blocksPerStage ?? 3;
  const init = new Initialisers(options.seed ?? 1);
  const input = tf.input({ name: 'input', shape: [size, size, options.channels ?? 3] });
  let x = relu('conv1_relu', batchNorm('conv1_bn', conv('conv1_conv', input, width, 3, 1, init)));
  for (let stage = 0; stage < 3; stage++) {
    for (let b = 0; b < blocks; b++) {
      x = basicBlock(x, width << stage, stage > 0 && b === 0 ? 2 : 1, `conv${stage + 2}_block${b + 1}`, init);
    }
  }
  x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as Sym;
  const output = tf.layers.dense({ name: 'predictions', units: options.classes ?? 10, activation: 'softmax', kernelInitializer: init.glorot() }).apply(x) as Sym;
  return tf.model({ name: options.name ?? 'resnet-20', inputs: input, outputs: output });
}
