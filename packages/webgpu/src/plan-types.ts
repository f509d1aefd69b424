/**
 * The operations of a plan (plan.ts) and what planning shares: the list of
 * supported layers and the MODEL_UNSUPPORTED error that names them.
 */
import { ModelError } from '@tamp/core';

/** Activations the kernels implement (fused into dense and conv2d, or standalone). */
export const ACTIVATIONS = Object.freeze(['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'elu'] as const);
export type Activation = (typeof ACTIVATIONS)[number];
export type Elementwise = Exclude<Activation, 'softmax'>;

export type Shape3 = readonly [number, number, number];

interface OpBase {
  readonly name: string;
  /** Tensors read, by number (Plan.tensorSizes). */
  readonly inputs: readonly number[];
  readonly output: number;
}

export interface DenseOp extends OpBase {
  readonly kind: 'dense';
  readonly inFeatures: number;
  readonly units: number;
  /** Index into the weights. */
  readonly kernel: number;
  readonly bias: number | undefined;
  /** Never softmax: a softmax becomes its own operation after this one. */
  readonly activation: Elementwise;
}

/** Convolution windows: shapes, stride and the padding before the first row and column ('same' pads the rest after). */
export interface Window {
  readonly inShape: Shape3;
  readonly outShape: Shape3;
  readonly kernelSize: readonly [number, number];
  readonly strides: readonly [number, number];
  readonly padTop: number;
  readonly padLeft: number;
}

export interface Conv2dOp extends OpBase, Window {
  readonly kind: 'conv2d';
  readonly kernel: number;
  readonly bias: number | undefined;
  readonly activation: Elementwise;
}

/** Depthwise convolution: kernel [kh, kw, in, multiplier]; output channel c·multiplier + m reads input channel c. */
export interface DepthwiseOp extends OpBase, Window {
  readonly kind: 'depthwise';
  readonly multiplier: number;
  readonly kernel: number;
  readonly bias: number | undefined;
  readonly activation: Elementwise;
}

export interface PoolOp extends OpBase {
  readonly kind: 'pool';
  readonly mode: 'max' | 'avg';
  readonly inShape: Shape3;
  readonly outShape: Shape3;
  readonly poolSize: readonly [number, number];
  readonly strides: readonly [number, number];
  readonly padTop: number;
  readonly padLeft: number;
}

export interface GlobalPoolOp extends OpBase {
  readonly kind: 'globalpool';
  readonly mode: 'max' | 'avg';
  readonly inShape: Shape3;
}

export interface ActivationOp extends OpBase {
  readonly kind: 'activation';
  readonly activation: Activation;
  /** Softmax: the size of the last axis it normalises over. */
  readonly lastDim: number;
  /** Elements per sample. */
  readonly size: number;
}

/** Inference batch norm over the last axis: y = γ (x − mean) / √(var + ε) + β. */
export interface BatchNormOp extends OpBase {
  readonly kind: 'batchnorm';
  readonly channels: number;
  readonly size: number;
  readonly gamma: number | undefined;
  readonly beta: number | undefined;
  readonly mean: number;
  readonly variance: number;
  readonly epsilon: number;
}

/** Elementwise sum of equal shapes. */
export interface AddOp extends OpBase {
  readonly kind: 'add';
  readonly size: number;
}

/** Concatenation: each sample is `outer` rows; input i contributes widths[i] values to each row. */
export interface ConcatOp extends OpBase {
  readonly kind: 'concat';
  readonly outer: number;
  readonly widths: readonly number[];
}

export interface PadOp extends OpBase {
  readonly kind: 'pad';
  readonly inShape: Shape3;
  readonly outShape: Shape3;
  readonly padTop: number;
  readonly padLeft: number;
}

/** Nearest-neighbour upsampling by whole factors. */
export interface UpsampleOp extends OpBase {
  readonly kind: 'upsample';
  readonly inShape: Shape3;
  readonly outShape: Shape3;
}

export type Op = DenseOp | Conv2dOp | DepthwiseOp | PoolOp | GlobalPoolOp | ActivationOp | BatchNormOp | AddOp | ConcatOp | PadOp | UpsampleOp;

export interface Plan {
  readonly name: string;
  /** Shape of one sample (no batch axis). */
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly ops: readonly Op[];
  /** Elements of one sample of each tensor; tensor 0 is the input. */
  readonly tensorSizes: readonly number[];
  /** The tensor that is the model's output. */
  readonly output: number;
  /** Largest activation of one sample, in elements. */
  readonly maxActivation: number;
}

const VIEW_ONLY = ['InputLayer', 'Flatten', 'Reshape', 'Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout'];
const COMPUTING = [
  'Dense', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'BatchNormalization', 'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D',
  'GlobalMaxPooling2D', 'Add', 'Concatenate', 'ZeroPadding2D', 'UpSampling2D', 'Activation', 'ReLU', 'Softmax',
];
export const SUPPORTED_LAYERS = Object.freeze([...COMPUTING, ...VIEW_ONLY].sort());
export const VIEW_ONLY_LAYERS: ReadonlySet<string> = new Set(VIEW_ONLY);

export function unsupported(what: string): ModelError {
  return new ModelError('MODEL_UNSUPPORTED', `${what}. The inference engine runs these layers: ${SUPPORTED_LAYERS.join(', ')}; activations ${ACTIVATIONS.join(', ')}`);
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** What planLayer gets: the layer's input tensors and how to take its weights and add tensors and operations. */
export interface LayerContext {
  readonly name: string;
  readonly cls: string;
  readonly config: Record<string, unknown>;
  readonly inputs: ReadonlyArray<{ readonly id: number; readonly shape: readonly number[] }>;
  /** The layer's i-th weight (index into the model's weights), checked against the expected shape. */
  weight(i: number, role: string, expected: readonly number[]): number;
  /** A new tensor of this shape; returns its number. */
  tensor(shape: readonly number[]): number;
  push(op: Op): void;
}

