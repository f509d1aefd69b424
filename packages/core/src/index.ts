/// <reference types="@webgpu/types" preserve="true" />
/**
 * @tamp/core: the browser-safe root. Node-only parts (datasets from disk,
 * file IO, Dawn, tfjs-node) live in @tamp/core/node.
 */
export * from './errors.js';
export * from './version.js';
export * from './protocol.js';
export * from './random.js';
export { crc32, crc32Portable, setCrc32Implementation } from './codec/crc32.js';
export * from './codec/tensor-codec.js';
export * from './codec/compression/index.js';
export * from './data/dataset.js';
export * from './data/shapes.js';
export * from './data/fit-input.js';
export * from './detection/boxes.js';
export * from './detection/grid.js';
export * from './detection/loss.js';
export * from './zoo/zoo.js';
export { MOBILENET_V2_BLOCKS, MOBILENET_TINY_BLOCKS, type BlockSpec, type MobileNetV2Options, makeDivisible, mobilenetTiny, mobilenetV2 } from './zoo/mobilenet.js';
export { type ResNet20Options, resnet20 } from './zoo/resnet.js';
export { shapesMobilenetDetector } from './zoo/mobilenet-detector.js';
export * from './backend/select.js';
export * from './backend/tfjs-backends.js';
export * from './train/optimizers.js';
export * from './cluster/index.js';
export * from './train/classifier.js';
export * from './train/batch-norm.js';
export * from './metrics/classification.js';
export * from './metrics/detection.js';
export * from './metrics/evaluate.js';
export * from './metrics/percentile.js';
export * from './image/mnist-preprocess.js';
export * from './image/resize.js';
