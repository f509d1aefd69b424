/// <reference types="@webgpu/types" preserve="true" />
/**
 * @tamp/core: the browser-safe root. Node-only parts (datasets from disk,
 * file IO, Dawn, tfjs-node) live in @tamp/core/node; the parts that load no
 * tfjs are @tamp/core/base too.
 */
export * from './base.js';
export * from './data/dataset.js';
export * from './data/shapes.js';
export * from './data/fit-input.js';
export * from './detection/boxes.js';
export * from './detection/grid.js';
export * from './detection/loss.js';
export * from './zoo/zoo.js';
export { MOBILENET_V2_BLOCKS, MOBILENET_TINY_BLOCKS, type BlockSpec, type MobileNetV2Options, makeDivisible, mobilenetTiny, mobilenetV2 } from './zoo/mobilenet.js';
export { type ResNet20Options, resnet20 } from './zoo/resnet.js';
export { MOBILENET_DETECTOR, MOBILENET_DETECTOR_0_75, type MobilenetDetectorOptions, shapesMobilenetDetector } from './zoo/mobilenet-detector.js';
export * from './backend/select.js';
export * from './backend/tfjs-backends.js';
export * from './train/optimizers.js';
export * from './train/classifier.js';
export * from './train/batch-norm.js';
export * from './metrics/classification.js';
export * from './metrics/detection.js';
export * from './metrics/evaluate.js';
export * from './image/mnist-preprocess.js';
export * from './image/resize.js';
