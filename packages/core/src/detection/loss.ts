/**
 * The detector's training loss (browser-safe, tfjs): for every cell,
 * binary cross-entropy of the objectness logit against "an object's centre
 * is here" (positive cells weighted up, since they are few); for cells with
 * an object, squared error of the box (centre offsets, and the square roots
 * of width and height so small boxes count as much as large ones) and
 * softmax cross-entropy of the class. Summed per image, averaged over the
 * batch. Built only from ops whose gradients the WASM backend has.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BOX_CHANNELS, type GridTargets } from './grid.js';

/** Weights of the loss terms. */
export const DETECTION_LOSS_WEIGHTS = Object.freeze({ positive: 5, negative: 1, box: 5, class: 1 });

/** BCE with logits, stable for any x: max(x, 0) − x·z + log(1 + e^−|x|). */
function bceWithLogits(x: tf.Tensor, z: tf.Tensor): tf.Tensor {
  return tf.add(tf.sub(tf.relu(x), tf.mul(x, z)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
}

/** Loss of raw detector outputs [N, G, G, 5 + C] against targets encoded for the same grid. */
export function detectionLoss(output: tf.Tensor, targets: GridTargets, numClasses: number): tf.Scalar {
  return tf.tidy(() => {
    const n = output.shape[0] as number;
    const cells = targets.objectness.length;
    const flat = tf.reshape(output, [cells, BOX_CHANNELS + numClasses]);
    const objectness = tf.tensor1d(targets.objectness);
    const w = DETECTION_LOSS_WEIGHTS;
    const weights = tf.add(tf.mul(objectness, w.positive - w.negative), w.negative);
    const objLoss = tf.sum(tf.mul(weights, bceWithLogits(tf.reshape(tf.slice(flat, [0, 0], [cells, 1]), [cells]), objectness)));

    const mask = tf.reshape(objectness, [cells, 1]);
    const box = tf.sigmoid(tf.slice(flat, [0, 1], [cells, 4]));
    const target = tf.tensor2d(targets.boxes, [cells, 4]);
    // Centre offsets as they are; sizes through a square root (ε keeps its gradient finite at 0).
    const centre = tf.squaredDifference(tf.slice(box, [0, 0], [cells, 2]), tf.slice(target, [0, 0], [cells, 2]));
    const size = tf.squaredDifference(tf.sqrt(tf.add(tf.slice(box, [0, 2], [cells, 2]), 1e-6)), tf.sqrt(tf.add(tf.slice(target, [0, 2], [cells, 2]), 1e-6)));
    const boxLoss = tf.sum(tf.mul(mask, tf.concat([centre, size], 1)));

    const labels = Int32Array.from(targets.classes, (c) => Math.max(0, c));
    const oneHot = tf.mul(tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses), mask);
    const logits = tf.slice(flat, [0, BOX_CHANNELS], [cells, numClasses]);
    const classLoss = tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits))));

    return tf.div(tf.addN([objLoss, tf.mul(boxLoss, w.box), tf.mul(classLoss, w.class)]), n) as tf.Scalar;
  });
}
