/**
 * Weight quantizers.
 *
 * int8: per output channel (the last axis of a tfjs kernel: [in, out] for
 * dense, [kh, kw, in, out] for conv), symmetric in [-127, 127] with zero
 * point 0, as TFLite's int8 weight spec: scale_c = max|w_c| / 127,
 * q = round(w / scale_c). Dequantizing loses at most scale_c / 2 per weight.
 *
 * uint8 affine (for the stock-tfjs export): one scale and minimum per tensor,
 * q = round((w − min) / scale), scale = (max − min) / 255, which is what
 * tfjs's weight manifests can express.
 */
import { InvalidArgumentError } from '@tamp/core';

export interface Int8Tensor {
  readonly shape: readonly number[];
  /** Quantized values, row-major, channels last. */
  readonly values: Int8Array;
  /** One scale per output channel (the last axis, or the last two for depthwise kernels). */
  readonly scales: Float32Array;
}

/** Number of output channels of a tensor: its last dimension (1 for scalars). */
export function channelsOf(shape: readonly number[]): number {
  return shape.length === 0 ? 1 : (shape[shape.length - 1] as number);
}

/**
 * Output channels of a weight by its name: a depthwise kernel
 * [kh, kw, in, multiplier] (tfjs names it ".../depthwise_kernel") has
 * in × multiplier output channels, the last two axes together (element i
 * still belongs to channel i mod C in row-major order); any other kernel
 * its last axis.
 */
export function outputChannels(name: string, shape: readonly number[]): number {
  if (/(^|\/)depthwise_kernel(_\d+)?$/.test(name) && shape.length === 4) return (shape[2] as number) * (shape[3] as number);
  return channelsOf(shape);
}

/** int8 per output channel; `channels` (default: the last axis) divides the tensor so element i is in channel i mod channels. */
export function quantizeInt8(data: Float32Array, shape: readonly number[], channels = channelsOf(shape)): Int8Tensor {
  const size = data.length;
  if (channels === 0 || size % channels !== 0) {
    throw new InvalidArgumentError(`quantizeInt8: ${size} values do not divide into ${channels} channels (the last dimension of [${shape.join(', ')}]); pass the tensor's own shape`);
  }
  const maxAbs = new Float32Array(channels);
  for (let i = 0; i < size; i++) {
    const c = i % channels;
    const a = Math.abs(data[i] as number);
    if (a > (maxAbs[c] as number)) maxAbs[c] = a;
  }
  // A channel of zeros keeps scale 1 (any scale reproduces it exactly).
  const scales = Float32Array.from(maxAbs, (m) => (m > 0 ? m / 127 : 1));
  const values = new Int8Array(size);
  for (let i = 0; i < size; i++) {
    const q = Math.round((data[i] as number) / (scales[i % channels] as number));
    values[i] = q > 127 ? 127 : q < -127 ? -127 : q;
  }
  return { shape: [...shape], values, scales };
}

export function dequantizeInt8(t: Int8Tensor): Float32Array {
  const channels = t.scales.length;
  const out = new Float32Array(t.values.length);
  for (let i = 0; i < out.length; i++) out[i] = (t.values[i] as number) * (t.scales[i % channels] as number);
  return out;
}

/** Largest |w − dequantized(w)| of each output channel. */
export function channelErrors(original: Float32Array, t: Int8Tensor): Float32Array {
  const channels = t.scales.length;
  const errors = new Float32Array(channels);
  for (let i = 0; i < original.length; i++) {
    const c = i % channels;
    const e = Math.abs((original[i] as number) - (t.values[i] as number) * (t.scales[c] as number));
    if (e > (errors[c] as number)) errors[c] = e;
  }
  return errors;
}

export interface Uint8Affine {
  readonly values: Uint8Array;
  readonly scale: number;
  readonly min: number;
}

/** tfjs's uint8 affine quantization of a whole tensor. */
export function quantizeUint8Affine(data: Float32Array): Uint8Affine {
  let min = Infinity;
  let max = -Infinity;
  for (const v of data) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (data.length === 0) return { values: new Uint8Array(0), scale: 1, min: 0 };
  const scale = max > min ? (max - min) / 255 : 1;
  const values = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) values[i] = Math.min(255, Math.max(0, Math.round(((data[i] as number) - min) / scale)));
  return { values, scale, min };
}

/** int8 with one symmetric scale for the whole tensor. */
export function quantizeInt8Tensor(data: Float32Array): { values: Int8Array; scale: number } {
  let max = 0;
  for (const v of data) max = Math.max(max, Math.abs(v));
  const scale = max > 0 ? Math.fround(max / 127) : 1;
  return { scale, values: Int8Array.from(data, (v) => Math.max(-127, Math.min(127, Math.round(v / scale)))) };
}
