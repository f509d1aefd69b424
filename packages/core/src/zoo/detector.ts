import * as tf from '@tensorflow/tfjs-layers';
import { BOX_CHANNELS } from '../detection/grid.js';
import { SHAPE_CLASSES, SHAPES_SCENE_SIZE } from '../data/shapes.js';

/**
 * shapes-detector: a single-shot detector for the `shapes` scenes, 96x96x3
 * in, a 12 × 12 grid out with 5 + 3 numbers per cell (objectness, box,
 * classes: see detection/grid.ts). Plain 3x3 convolutions (three with
 * stride 2, two more at the grid's resolution, for a 47-pixel receptive
 * field that covers the largest shapes) and a 1x1 head: only layers whose
 * gradients Tamp's WASM path computes, and that @tamp/webgpu runs.
 */
export function shapesDetector(seed: number): tf.LayersModel {
  const init = (i: number) => tf.initializers.heNormal({ seed: seed + i });
  const conv = (name: string, filters: number, strides: number, i: number, inputShape?: number[]) =>
    tf.layers.conv2d({ name, filters, kernelSize: 3, strides, padding: 'same', activation: 'relu', kernelInitializer: init(i), ...(inputShape !== undefined ? { inputShape } : {}) });
  return tf.sequential({
    name: 'shapes-detector',
    layers: [
      conv('conv1', 16, 2, 1, [SHAPES_SCENE_SIZE, SHAPES_SCENE_SIZE, 3]),
      conv('conv2', 32, 2, 2),
      conv('conv3', 64, 2, 3),
      conv('conv4', 64, 1, 4),
      conv('conv5', 64, 1, 5),
      tf.layers.conv2d({ name: 'head', filters: BOX_CHANNELS + SHAPE_CLASSES.length, kernelSize: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 6 }) }),
    ],
  });
}
