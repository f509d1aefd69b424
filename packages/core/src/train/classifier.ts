/**
 * The math of one training step (browser-safe): used by the single-process
 * trainer and by every cluster worker. Classification batches use softmax
 * cross-entropy; detection batches (with ground-truth objects) the
 * detector's loss on its output grid.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers tfjs-core's gradient functions when it loads; every
// model here comes from it, so the gradients are always there.
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { Batch } from '../data/dataset.js';
import { BOX_CHANNELS, encodeTargets } from '../detection/grid.js';
import { detectionLoss } from '../detection/loss.js';
import { InvalidArgumentError } from '../errors.js';
import { type ImageShape, fitSamples } from '../data/fit-input.js';

const EPSILON = 1e-7;

/**
 * [n, ...inputShape] tensor for a batch, following the model's input shape;
 * square images smaller than an image input are padded (and grey ones
 * repeated over its channels) first, see data/fit-input.ts.
 */
export function batchInput(model: LayersModel, xs: Float32Array, n: number): tf.Tensor {
  const shape = model.inputs[0]?.shape.slice(1) as number[];
  const fitted = shape.length === 3 ? fitSamples(xs, n, shape as unknown as ImageShape) : xs;
  return tf.tensor(fitted, [n, ...shape], 'float32');
}

/** Mean categorical cross-entropy of softmax outputs (clipped like tfjs-layers). */
export function crossEntropy(probabilities: tf.Tensor, labels: tf.Tensor1D, numClasses: number): tf.Scalar {
  return tf.tidy(() => {
    const oneHot = tf.cast(tf.oneHot(labels, numClasses), 'float32');
    const logp = tf.log(tf.clipByValue(probabilities, EPSILON, 1 - EPSILON));
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, logp), -1))) as tf.Scalar;
  });
}

/** Classes of a classifier, whose output is [N, classes]; anything else is refused saying what would fit. */
export function numClassesOf(model: LayersModel): number {
  const shape = model.outputs[0]?.shape ?? [];
  const classes = shape[1];
  if (shape.length !== 2 || typeof classes !== 'number' || classes < 1) {
    throw new InvalidArgumentError(
      `model "${model.name}" cannot train or score as a classifier: its output is [${shape.map((d) => d ?? 'N').join(', ')}], a classifier's is [N, classes] (softmax); use a classification model on classification data, or a detector on detection data`,
    );
  }
  return classes;
}

/** The output grid of a detector: [N, G, G, 5 + C]. */
export function detectorGrid(model: LayersModel): { grid: number; numClasses: number } {
  const shape = model.outputs[0]?.shape ?? [];
  const grid = shape[1];
  const channels = shape[3];
  if (shape.length !== 4 || typeof grid !== 'number' || grid !== shape[2] || typeof channels !== 'number' || channels <= BOX_CHANNELS) {
    throw new InvalidArgumentError(
      `model "${model.name}" cannot train or score as a detector: its output is [${shape.map((d) => d ?? 'N').join(', ')}], a detector's is [N, G, G, ${BOX_CHANNELS} + classes]; train a detector (e.g. shapes-detector) on detection data, or this model on classification data`,
    );
  }
  return { grid, numClasses: channels - BOX_CHANNELS };
}

/** Loss of the model on a batch, as a function tfjs can differentiate. */
export function lossFunction(model: LayersModel, batch: Batch): () => tf.Scalar {
  if (batch.objects !== undefined) {
    const shape = detectorGrid(model);
    const targets = encodeTargets(batch.objects, shape);
    return () => {
      const x = batchInput(model, batch.xs, batch.size);
      return detectionLoss(model.apply(x, { training: true }) as tf.Tensor, targets, shape.numClasses);
    };
  }
  const numClasses = numClassesOf(model);
  return () => {
    const x = batchInput(model, batch.xs, batch.size);
    const y = tf.tensor1d(batch.labels, 'int32');
    const p = model.apply(x, { training: true }) as tf.Tensor;
    return crossEntropy(p, y, numClasses);
  };
}

export interface Gradients {
  readonly loss: number;
  /** Gradient per trainable variable, by the variable's name (e.g. "fc1/kernel"). Caller disposes. */
  readonly grads: Map<string, tf.Tensor>;
}

/**
 * Loss and gradients of one batch, without changing the model. Reads are
 * asynchronous: WebGPU cannot read synchronously in Node.
 */
export async function computeGradients(model: LayersModel, batch: Batch): Promise<Gradients> {
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(lossFunction(model, batch), variables);
  const loss = (await value.data())[0] as number;
  value.dispose();
  const byName = new Map<string, tf.Tensor>();
  model.trainableWeights.forEach((w, i) => {
    const v = variables[i] as tf.Variable;
    byName.set(w.originalName, grads[v.name] as tf.Tensor);
  });
  return { loss, grads: byName };
}

/** One optimizer step on a batch; resolves to the loss. */
export async function trainStep(model: LayersModel, optimizer: tf.Optimizer, batch: Batch): Promise<number> {
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const cost = optimizer.minimize(lossFunction(model, batch), true, variables) as tf.Scalar;
  const loss = (await cost.data())[0] as number;
  cost.dispose();
  return loss;
}
