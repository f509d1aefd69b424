/**
 * Fitting dataset samples to a model's input (browser-safe). The zoo's
 * ImageNet/CIFAR-style models take [size, size, 3]; MNIST and Fashion-MNIST
 * samples are 28x28x1. A square k x k sample with 1 or the model's channels
 * is scaled up by the largest whole factor that fits (nearest neighbour:
 * 28 -> 32 keeps 1x, 28 -> 96 takes 3x), centred with zero padding, and a
 * grey sample is repeated over the model's channels. So resnet-20 sees
 * Fashion-MNIST as 32x32 images with a 2-pixel black border, as CIFAR
 * ResNets are usually given MNIST-like data. Samples that already have the
 * model's shape pass through untouched.
 */
import { InvalidArgumentError } from '../errors.js';

export type ImageShape = readonly [number, number, number];

export interface InputFit {
  readonly from: ImageShape;
  readonly to: ImageShape;
  /** Whole upscaling factor. */
  readonly scale: number;
  readonly top: number;
  readonly left: number;
}

function squareShape(per: number, channels: number): ImageShape | undefined {
  if (per % channels !== 0) return undefined;
  const k = Math.round(Math.sqrt(per / channels));
  return k * k * channels === per ? [k, k, channels] : undefined;
}

/**
 * How samples of `perSample` values (or of shape `from`) fit an input of
 * shape `to`; undefined when they need no change. Throws when they cannot fit.
 */
export function inputFit(perSample: number | ImageShape, to: ImageShape): InputFit | undefined {
  const [h, w, c] = to;
  const size = typeof perSample === 'number' ? perSample : perSample[0] * perSample[1] * perSample[2];
  if (size === h * w * c) return undefined;
  const from = typeof perSample === 'number' ? (squareShape(size, c) ?? squareShape(size, 1)) : perSample;
  const described = typeof perSample === 'number' ? `samples of ${size} values` : `${from?.join('x')} samples`;
  if (from === undefined || (from[2] !== c && from[2] !== 1) || from[0] > h || from[1] > w) {
    throw new InvalidArgumentError(
      `${described} do not fit the model's [${to.join(', ')}] input: Tamp pads or scales up square images with 1 or ${c} channels to the model's size, never down; pick a model whose input is at least the data's (e.g. resnet-20 or mobilenet-v2-0.35-32 for 28x28 data)`,
    );
  }
  const scale = Math.floor(Math.min(h / from[0], w / from[1]));
  return { from, to, scale, top: Math.floor((h - from[0] * scale) / 2), left: Math.floor((w - from[1] * scale) / 2) };
}

/** `n` samples fitted to the input shape (a new array), or `xs` itself when they already fit. */
export function fitSamples(xs: Float32Array, n: number, to: ImageShape): Float32Array {
  if (n === 0) return xs;
  const fit = inputFit(xs.length / n, to);
  if (fit === undefined) return xs;
  const [fh, fw, fc] = fit.from;
  const [h, w, c] = to;
  const out = new Float32Array(n * h * w * c);
  for (let s = 0; s < n; s++) {
    const src = s * fh * fw * fc;
    const dst = s * h * w * c;
    for (let y = 0; y < fh * fit.scale; y++) {
      const sy = Math.floor(y / fit.scale);
      for (let x = 0; x < fw * fit.scale; x++) {
        const sx = Math.floor(x / fit.scale);
        const from = src + (sy * fw + sx) * fc;
        const to = dst + ((y + fit.top) * w + x + fit.left) * c;
        for (let k = 0; k < c; k++) out[to + k] = xs[from + (fc === 1 ? 0 : k)] as number;
      }
    }
  }
  return out;
}
