/**
 * One inference request, whatever protocol it came in: inputs checked against
 * the model, run through the model version's dynamic batcher, outputs named.
 * Detectors also return their decoded boxes (as TF's object-detection API
 * names them) beside the raw grid.
 */
import { decodeGrid, InvalidArgumentError } from '@tamp/core';
import { gridOf } from '@tamp/webgpu';
import { imagesToSamples } from './images.js';
import type { ServedModel } from './model-store.js';
import { bytesElements, checkShape, type Datatype, elementCount, numbersFromBytes, numbersFromJson } from './tensors.js';

/** The one input every Tamp model takes. */
export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'output';
export const DETECTION_OUTPUTS = Object.freeze(['detection_boxes', 'detection_scores', 'detection_classes', 'num_detections'] as const);

export interface InputTensor {
  readonly name: string;
  readonly shape: unknown;
  readonly datatype: Datatype;
  /** JSON data (flat or nested), or */
  readonly data?: unknown;
  /** raw bytes (binary extension, gRPC raw_input_contents). */
  readonly raw?: Uint8Array;
  /** Encoded images as strings (JSON BYTES: base64 under TF Serving's {"b64": ...}, or the v2 JSON's strings). */
  readonly images?: readonly Uint8Array[];
}

export interface OutputTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: 'FP32' | 'INT32';
  readonly data: Float32Array | Int32Array;
}

export interface InferOptions {
  /** The `performance.now()` time after which the request is not run. */
  readonly deadline?: number;
  readonly maxElements: number;
  /** Detections below it are not returned (default 0.3). */
  readonly scoreThreshold?: number;
}

export interface InferResult {
  readonly outputs: OutputTensor[];
  readonly queueMs: number;
  readonly batch: number;
}

export function samplesOf(served: ServedModel, input: InputTensor, maxElements: number): { data: Float32Array; batch: number } {
  const what = `input "${input.name}"`;
  if (input.name !== INPUT_NAME) throw new InvalidArgumentError(`model "${served.name}" has one input, "${INPUT_NAME}"; got "${input.name}"`);
  const inputShape = served.info.inputShape;
  const per = elementCount(inputShape);
  const shape = checkShape(input.shape, what, maxElements);
  if (input.datatype === 'BYTES') {
    const count = elementCount(shape);
    const images = input.images ?? (input.raw !== undefined ? bytesElements(input.raw, count, what) : undefined);
    if (images === undefined) throw new InvalidArgumentError(`${what}: BYTES input without data`);
    if (images.length !== count || shape[0] !== count) throw new InvalidArgumentError(`${what}: shape [${shape.join(', ')}] for ${images.length} images; use [N] or [N, 1]`);
    return { data: imagesToSamples(images, inputShape, what), batch: count };
  }
  const batch = shape[0] as number;
  if (shape.length < 2 || elementCount(shape.slice(1)) !== per || batch < 1) {
    throw new InvalidArgumentError(`${what}: shape [${shape.join(', ')}] does not match the model's input [-1, ${inputShape.join(', ')}] (${per} values per sample, at least one sample)`);
  }
  const count = batch * per;
  const data = input.raw !== undefined ? numbersFromBytes(input.raw, count, input.datatype, what) : numbersFromJson(input.data, count, input.datatype, what);
  return { data, batch };
}

export async function infer(served: ServedModel, inputs: readonly InputTensor[], options: InferOptions): Promise<InferResult> {
  if (inputs.length !== 1) throw new InvalidArgumentError(`model "${served.name}" takes exactly one input ("${INPUT_NAME}"), got ${inputs.length}`);
  const { data, batch } = samplesOf(served, inputs[0] as InputTensor, options.maxElements);
  const ran = await served.use((m) => m.batcher.submit(data, batch, options.deadline));
  const outShape = [batch, ...served.info.outputShape];
  const outputs: OutputTensor[] = [{ name: OUTPUT_NAME, shape: outShape, datatype: 'FP32', data: ran.output }];
  if (served.task === 'detection') outputs.push(...detectionOutputs(served, ran.output, batch, options.scoreThreshold ?? 0.3));
  return { outputs, queueMs: ran.queueMs, batch: ran.batch };
}

function detectionOutputs(served: ServedModel, grid: Float32Array, batch: number, scoreThreshold: number): OutputTensor[] {
  const found = decodeGrid(grid, batch, gridOf(served.info.outputShape), { scoreThreshold });
  const m = Math.max(0, ...found.map((f) => f.length));
  const boxes = new Float32Array(batch * m * 4);
  const scores = new Float32Array(batch * m);
  const classes = new Int32Array(batch * m);
  const counts = new Int32Array(batch);
  found.forEach((dets, i) => {
    counts[i] = dets.length;
    dets.forEach((d, j) => {
      boxes.set([d.x1, d.y1, d.x2, d.y2], (i * m + j) * 4);
      scores[i * m + j] = d.score;
      classes[i * m + j] = d.label;
    });
  });
  return [
    { name: 'detection_boxes', shape: [batch, m, 4], datatype: 'FP32', data: boxes },
    { name: 'detection_scores', shape: [batch, m], datatype: 'FP32', data: scores },
    { name: 'detection_classes', shape: [batch, m], datatype: 'INT32', data: classes },
    { name: 'num_detections', shape: [batch], datatype: 'INT32', data: counts },
  ];
}
