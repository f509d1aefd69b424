import * as tf from '@tensorflow/tfjs-layers';
import { BOX_CHANNELS } from '../detection/grid.js';
import { SHAPE_CLASSES, SHAPES_SCENE_SIZE } from '../data/shapes.js';
import { Initialisers, MOBILENET_V2_BLOCKS, batchNorm, invertedResidual, relu6, stem } from './mobilenet.js';

type Sym = tf.SymbolicTensor;

/** The settings a MobileNet-backbone detector takes. */
export interface MobilenetDetectorOptions {
  /** Width multiplier of the backbone (Keras's alpha). */
  readonly alpha: number;
  /** Filters of the head's separable convolution. */
  readonly headFilters: number;
}

/**
 * The zoo's shapes-mobilenet-detector: alpha 0.35, a 64-filter head. The
 * first version (alpha 0.75, 96 filters: MOBILENET_DETECTOR_0_75) reached
 * mAP 0.955 but ran 1.7-1.8x slower than shapes-detector on WebGPU and
 * WASM at batch 1: the same blocks at under half the width cut the
 * arithmetic to 0.3x (5.5 M multiply-adds a scene against 18.6 M) and kept
 * the mAP (BENCHMARKS.md, "Shapes detector on a MobileNetV2 backbone").
 */
export const MOBILENET_DETECTOR: MobilenetDetectorOptions = { alpha: 0.35, headFilters: 64 };
/** The first MobileNet detector's settings, kept for comparison: shapesMobilenetDetector(seed, MOBILENET_DETECTOR_0_75) builds it. */
export const MOBILENET_DETECTOR_0_75: MobilenetDetectorOptions = { alpha: 0.75, headFilters: 96 };
/** MobileNetV2 blocks kept: block_0 ... block_5 end at stride 8, a 12x12 grid on 96x96 scenes. */
export const DETECTOR_BLOCKS = 6;

/**
 * shapes-mobilenet-detector: MobileNetV2 up to block_5 (stride 8,
 * receptive field 59 pixels, more than the largest shapes) and an SSD-lite
 * head (Sandler et al. 2018: every head convolution depthwise separable):
 * a SeparableConv2D, batch norm, ReLU6, then the predictor, a 3x3 depthwise
 * conv with batch norm and ReLU6 followed by a 1x1 conv to 5 + 3 channels.
 * Same input (96x96x3) and output (12x12 grid of objectness, box and class
 * logits, detection/grid.ts) as shapes-detector, so training, decoding and
 * mAP are shared.
 */
export function shapesMobilenetDetector(seed: number, options: MobilenetDetectorOptions = MOBILENET_DETECTOR): tf.LayersModel {
  const { alpha, headFilters } = options;
  const init = new Initialisers(seed);
  const input = tf.input({ name: 'input', shape: [SHAPES_SCENE_SIZE, SHAPES_SCENE_SIZE, 3] });
  let x = stem(input, alpha, init);
  for (const [id, block] of MOBILENET_V2_BLOCKS.slice(0, DETECTOR_BLOCKS).entries()) x = invertedResidual(x, block, alpha, id, init);
  x = tf.layers.separableConv2d({ name: 'head_sep', filters: headFilters, kernelSize: 3, padding: 'same', useBias: false, depthwiseInitializer: init.he(), pointwiseInitializer: init.he() }).apply(x) as Sym;
  x = relu6('head_sep_relu', batchNorm('head_sep_bn', x));
  x = tf.layers.depthwiseConv2d({ name: 'head_depthwise', kernelSize: 3, padding: 'same', useBias: false, depthwiseInitializer: init.he() }).apply(x) as Sym;
  x = relu6('head_depthwise_relu', batchNorm('head_depthwise_bn', x));
  const output = tf.layers.conv2d({ name: 'head', filters: BOX_CHANNELS + SHAPE_CLASSES.length, kernelSize: 1, kernelInitializer: init.glorot() }).apply(x) as Sym;
  return tf.model({ name: 'shapes-mobilenet-detector', inputs: input, outputs: output });
}
