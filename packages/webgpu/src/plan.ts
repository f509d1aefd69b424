/**
 * A Keras (tfjs LayersModel) topology turned into a list of operations with
 * every shape worked out: what the WGSL kernels, the float64 reference and
 * the error messages all read. Layers that only change the view (Flatten,
 * Reshape, Dropout, InputLayer) leave no operation: activations are NHWC and
 * row-major, so flattening is free.
 *
 * Supported: Sequential models, and functional models whose layers form one
 * chain. Anything else is a ModelError('MODEL_UNSUPPORTED') naming the layer.
 */
import { ModelError } from '@tamp/core';
import type { TampTensor } from '@tamp/compress';

/** Activations the kernels implement (fused into dense and conv2d, or standalone). */
export const ACTIVATIONS = Object.freeze(['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'elu'] as const);
export type Activation = (typeof ACTIVATIONS)[number];

export interface DenseOp {
  readonly kind: 'dense';
  readonly name: string;
  readonly inFeatures: number;
  readonly units: number;
  /** Index into the weights. */
  readonly kernel: number;
  readonly bias: number | undefined;
  /** Never softmax: a softmax becomes its own operation after this one. */
  readonly activation: Exclude<Activation, 'softmax'>;
}

export interface Conv2dOp {
  readonly kind: 'conv2d';
  readonly name: string;
  /** [height, width, channels] in and out. */
  readonly inShape: readonly [number, number, number];
  readonly outShape: readonly [number, number, number];
  readonly kernelSize: readonly [number, number];
  readonly strides: readonly [number, number];
  /** Padding before the first row and column ('same' pads the rest after). */
  readonly padTop: number;
  readonly padLeft: number;
  readonly kernel: number;
  readonly bias: number | undefined;
  readonly activation: Exclude<Activation, 'softmax'>;
}

export interface PoolOp {
  readonly kind: 'pool';
  readonly name: string;
  readonly mode: 'max' | 'avg';
  readonly inShape: readonly [number, number, number];
  readonly outShape: readonly [number, number, number];
  readonly poolSize: readonly [number, number];
  readonly strides: readonly [number, number];
  readonly padTop: number;
  readonly padLeft: number;
}

export interface ActivationOp {
  readonly kind: 'activation';
  readonly name: string;
  readonly activation: Activation;
  /** Softmax: the size of the last axis it normalises over. */
  readonly lastDim: number;
  /** Elements per sample. */
  readonly size: number;
}

export type Op = DenseOp | Conv2dOp | PoolOp | ActivationOp;

export interface Plan {
  readonly name: string;
  /** Shape of one sample (no batch axis). */
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly ops: readonly Op[];
  /** Largest activation of one sample, in elements (sizes the GPU's ping-pong buffers). */
  readonly maxActivation: number;
}

interface KerasLayer {
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes?: unknown[];
}

const VIEW_ONLY = new Set(['InputLayer', 'Flatten', 'Reshape', 'Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout']);
const SUPPORTED = ['Dense', 'Conv2D', 'MaxPooling2D', 'AveragePooling2D', 'Activation', 'ReLU', 'Softmax', ...VIEW_ONLY].sort();

function unsupported(what: string): ModelError {
  return new ModelError('MODEL_UNSUPPORTED', `${what}. The inference engine runs these layers: ${SUPPORTED.join(', ')}; activations ${ACTIVATIONS.join(', ')}`);
}

function layersOf(topology: unknown): { name: string; layers: KerasLayer[] } {
  const t = topology as { class_name?: string; config?: { name?: string; layers?: KerasLayer[] } | KerasLayer[]; model_config?: unknown } | null;
  if (t === null || typeof t !== 'object') throw new ModelError('MODEL_INVALID', 'the model has no topology');
  if (t.model_config !== undefined && t.class_name === undefined) return layersOf(t.model_config);
  const config = t.config;
  const layers = Array.isArray(config) ? config : config?.layers;
  if (!Array.isArray(layers)) throw new ModelError('MODEL_INVALID', `the topology (${String(t.class_name)}) lists no layers`);
  const name = (Array.isArray(config) ? undefined : config?.name) ?? 'model';
  if (t.class_name === 'Sequential') return { name, layers };
  if (t.class_name === 'Model' || t.class_name === 'Functional') {
    // A chain: every layer after the first takes exactly one input, the layer before it.
    layers.forEach((l, i) => {
      const nodes = (l.inbound_nodes ?? []) as unknown[][];
      const inputs = nodes.flat();
      if (i === 0) return;
      const prev = (layers[i - 1] as KerasLayer).config.name;
      const from = Array.isArray(inputs[0]) ? (inputs[0] as unknown[])[0] : undefined;
      if (nodes.length !== 1 || inputs.length !== 1 || from !== prev) {
        throw unsupported(`layer "${String(l.config.name)}" is not fed by the single layer before it: only models that form one chain run here`);
      }
    });
    return { name, layers };
  }
  throw unsupported(`a ${String(t.class_name)} model`);
}

function pair(value: unknown, what: string): [number, number] {
  const v = Array.isArray(value) ? value : [value, value];
  const a = Number(v[0]);
  const b = Number(v[1]);
  if (!Number.isInteger(a) || !Number.isInteger(b) || a < 1 || b < 1) throw new ModelError('MODEL_INVALID', `${what} is ${JSON.stringify(value)}, expected one or two positive whole numbers`);
  return [a, b];
}

function activationOf(value: unknown, layer: string): Activation {
  const a = (value ?? 'linear') as string;
  if ((ACTIVATIONS as readonly string[]).includes(a)) return a as Activation;
  throw unsupported(`layer "${layer}" uses the activation "${a}"`);
}

/** Output size and leading padding of one spatial axis (TensorFlow's rules). */
function window(input: number, size: number, stride: number, padding: string, layer: string): { out: number; pad: number } {
  if (padding === 'valid') {
    const out = Math.floor((input - size) / stride) + 1;
    if (out < 1) throw new ModelError('MODEL_INVALID', `layer "${layer}": a window of ${size} does not fit an input of ${input}`);
    return { out, pad: 0 };
  }
  if (padding === 'same') {
    const out = Math.ceil(input / stride);
    const total = Math.max((out - 1) * stride + size - input, 0);
    return { out, pad: Math.floor(total / 2) };
  }
  throw unsupported(`layer "${layer}" uses padding "${padding}"`);
}

/** A config value in a message or comparison: strings as they are, anything else as JSON. */
function str(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Turn a topology and its weights into a plan; checks every weight's shape against its layer. */
export function planModel(topology: unknown, weights: readonly TampTensor[]): Plan {
  const { name, layers } = layersOf(topology);
  const ops: Op[] = [];
  let shape: number[] | undefined;
  let inputShape: number[] | undefined;
  let next = 0;
  let maxActivation = 0;
  const takeWeight = (layer: string, role: string, expected: number[]): number => {
    const w = weights[next];
    if (w === undefined) throw new ModelError('MODEL_INVALID', `layer "${layer}" needs a ${role} of shape [${expected.join(',')}], but the model has only ${weights.length} weights`);
    if (w.shape.length !== expected.length || w.shape.some((d, i) => d !== expected[i])) {
      throw new ModelError('MODEL_INVALID', `layer "${layer}": its ${role} "${w.name}" has shape [${w.shape.join(',')}], expected [${expected.join(',')}]`);
    }
    return next++;
  };
  const addActivation = (layer: string, activation: Activation) => {
    if (activation === 'linear') return;
    const s = shape as number[];
    ops.push({ kind: 'activation', name: `${layer}/${activation}`, activation, lastDim: s[s.length - 1] as number, size: sizeOf(s) });
  };

  for (const layer of layers) {
    const c = layer.config;
    const lname = str(c.name ?? layer.class_name);
    const declared = (c.batch_input_shape ?? c.batchInputShape) as Array<number | null> | undefined;
    if (shape === undefined) {
      if (!Array.isArray(declared)) throw new ModelError('MODEL_INVALID', `the first layer ("${lname}") declares no input shape`);
      const dims = declared.slice(1);
      if (dims.some((d) => d === null || !Number.isInteger(d) || (d as number) < 1)) throw unsupported(`the input shape [${declared.map(String).join(',')}] has unknown dimensions`);
      shape = dims as number[];
      inputShape = [...shape];
      maxActivation = sizeOf(shape);
    }
    if (c.data_format !== undefined && c.data_format !== 'channels_last') throw unsupported(`layer "${lname}" uses ${str(c.data_format)}`);
    const cls = layer.class_name;
    if (cls === 'InputLayer' || cls.includes('Dropout') || cls === 'GaussianNoise') {
      // no-op at inference
    } else if (cls === 'Flatten') {
      shape = [sizeOf(shape)];
    } else if (cls === 'Reshape') {
      const target = (c.target_shape ?? c.targetShape) as number[];
      const known = target.filter((d) => d !== -1);
      const size = sizeOf(shape);
      const resolved = target.map((d) => (d === -1 ? size / sizeOf(known) : d));
      if (sizeOf(resolved) !== size || resolved.some((d) => !Number.isInteger(d))) throw new ModelError('MODEL_INVALID', `layer "${lname}" reshapes [${shape.join(',')}] to [${target.join(',')}]`);
      shape = resolved;
    } else if (cls === 'Dense') {
      if (shape.length !== 1) throw unsupported(`layer "${lname}" (Dense) gets an input of shape [${shape.join(',')}]; add a Flatten before it`);
      const units = Number(c.units);
      const inFeatures = shape[0] as number;
      const kernel = takeWeight(lname, 'kernel', [inFeatures, units]);
      const bias = c.use_bias === false ? undefined : takeWeight(lname, 'bias', [units]);
      const activation = activationOf(c.activation, lname);
      ops.push({ kind: 'dense', name: lname, inFeatures, units, kernel, bias, activation: activation === 'softmax' ? 'linear' : activation });
      shape = [units];
      if (activation === 'softmax') addActivation(lname, 'softmax');
    } else if (cls === 'Conv2D') {
      if (shape.length !== 3) throw unsupported(`layer "${lname}" (Conv2D) gets an input of shape [${shape.join(',')}]; it needs [height, width, channels]`);
      const dilation = pair(c.dilation_rate ?? 1, `layer "${lname}" dilation_rate`);
      if (dilation[0] !== 1 || dilation[1] !== 1) throw unsupported(`layer "${lname}" uses dilation ${dilation.join('x')}`);
      if (c.groups !== undefined && c.groups !== 1) throw unsupported(`layer "${lname}" uses grouped convolution`);
      const [h, w, ch] = shape as [number, number, number];
      const kernelSize = pair(c.kernel_size, `layer "${lname}" kernel_size`);
      const strides = pair(c.strides ?? 1, `layer "${lname}" strides`);
      const padding = str(c.padding ?? 'valid');
      const y = window(h, kernelSize[0], strides[0], padding, lname);
      const x = window(w, kernelSize[1], strides[1], padding, lname);
      const filters = Number(c.filters);
      const kernel = takeWeight(lname, 'kernel', [kernelSize[0], kernelSize[1], ch, filters]);
      const bias = c.use_bias === false ? undefined : takeWeight(lname, 'bias', [filters]);
      const activation = activationOf(c.activation, lname);
      const outShape: [number, number, number] = [y.out, x.out, filters];
      ops.push({ kind: 'conv2d', name: lname, inShape: [h, w, ch], outShape, kernelSize, strides, padTop: y.pad, padLeft: x.pad, kernel, bias, activation: activation === 'softmax' ? 'linear' : activation });
      shape = [...outShape];
      if (activation === 'softmax') addActivation(lname, 'softmax');
    } else if (cls === 'MaxPooling2D' || cls === 'AveragePooling2D') {
      if (shape.length !== 3) throw unsupported(`layer "${lname}" (${cls}) gets an input of shape [${shape.join(',')}]`);
      const [h, w, ch] = shape as [number, number, number];
      const poolSize = pair(c.pool_size ?? 2, `layer "${lname}" pool_size`);
      const strides = pair(c.strides ?? poolSize, `layer "${lname}" strides`);
      const padding = str(c.padding ?? 'valid');
      const y = window(h, poolSize[0], strides[0], padding, lname);
      const x = window(w, poolSize[1], strides[1], padding, lname);
      const outShape: [number, number, number] = [y.out, x.out, ch];
      ops.push({ kind: 'pool', name: lname, mode: cls === 'MaxPooling2D' ? 'max' : 'avg', inShape: [h, w, ch], outShape, poolSize, strides, padTop: y.pad, padLeft: x.pad });
      shape = [...outShape];
    } else if (cls === 'Activation') {
      addActivation(lname, activationOf(c.activation, lname));
    } else if (cls === 'ReLU') {
      if ((c.max_value !== undefined && c.max_value !== null && c.max_value !== 6) || (c.negative_slope ?? 0) !== 0 || (c.threshold ?? 0) !== 0) throw unsupported(`layer "${lname}" (ReLU) with options`);
      addActivation(lname, c.max_value === 6 ? 'relu6' : 'relu');
    } else if (cls === 'Softmax') {
      if (c.axis !== undefined && c.axis !== -1 && c.axis !== shape.length) throw unsupported(`layer "${lname}" (Softmax) over axis ${str(c.axis)}`);
      addActivation(lname, 'softmax');
    } else {
      throw unsupported(`layer "${lname}" is a ${cls}`);
    }
    maxActivation = Math.max(maxActivation, sizeOf(shape));
  }
  if (shape === undefined || inputShape === undefined) throw new ModelError('MODEL_INVALID', 'the model has no layers');
  if (next !== weights.length) throw new ModelError('MODEL_INVALID', `the layers use ${next} weights, the model holds ${weights.length} ("${weights[next]?.name}" is left over)`);
  if (ops.length === 0) throw unsupported('the model computes nothing (no Dense, Conv2D, pooling or activation layer)');
  return { name, inputShape, outputShape: shape, ops, maxActivation };
}
