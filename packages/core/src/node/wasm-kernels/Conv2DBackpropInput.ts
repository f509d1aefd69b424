/**
 * Conv2DBackpropInput for the WASM backend, through XNNPACK.
 *
 * The stock kernel is a plain loop outside XNNPACK and takes most of a
 * LeNet-5 step. For stride 1 the input gradient is a convolution of dy,
 * padded by (k − 1 − pad) before and enough after to give the input's size,
 * with the filter flipped in space and its channel axes swapped:
 *   dx = conv2d(pad(dy), transpose(reverse(W, [0, 1]), [0, 1, 3, 2]))
 * A strided convolution's input gradient is the same convolution of dy
 * dilated by the stride (s − 1 zeros between its pixels, written here in one
 * pass): XNNPACK multiplies those zeros too (4x the work at stride 2), and is
 * still several times faster than the stock loop (ResNet's stride-2 blocks).
 * NCHW keeps the stock kernel.
 */
import { type KernelConfig, type KernelFunc, type TensorInfo, backend_util } from '@tensorflow/tfjs-core';
import { type WasmBackendLike, heapF32, release, run, stockKernel, transpose } from './compose.js';

interface Attrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

export const STOCK_CONV2D_BACKPROP_INPUT = 'Conv2DBackpropInput';

const conv2DBackpropInput: KernelFunc = (args) => {
  const { inputs, backend, attrs } = args;
  const b = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as Attrs;
  const dy = inputs.dy as TensorInfo;
  const filter = inputs.filter as TensorInfo;
  const stock = stockKernel(STOCK_CONV2D_BACKPROP_INPUT);
  const info = backend_util.computeConv2DInfo(
    a.inputShape,
    filter.shape as [number, number, number, number],
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
    false,
    backend_util.convertConv2DDataFormat(a.dataFormat),
  );
  const { filterHeight: kh, filterWidth: kw, inHeight: h, inWidth: w, outHeight: ho, outWidth: wo, strideHeight: sh, strideWidth: sw } = info;
  // dy dilated by the stride: (ho − 1)·sh + 1 rows.
  const hd = (ho - 1) * sh + 1;
  const wd = (wo - 1) * sw + 1;
  const padTop = kh - 1 - info.padInfo.top;
  const padLeft = kw - 1 - info.padInfo.left;
  const padBottom = h - hd + info.padInfo.top;
  const padRight = w - wd + info.padInfo.left;
  const fast =
    info.dataFormat === 'channelsLast' &&
    dy.dtype === 'float32' &&
    Math.min(padTop, padLeft, padBottom, padRight) >= 0;
  if (!fast) {
    if (stock === undefined) throw new Error('Conv2DBackpropInput (wasm): no stock kernel to fall back on');
    return stock.kernelFunc(args);
  }
  const source = sh === 1 && sw === 1 ? dy : dilate(b, dy, sh, sw);
  const flipped = run(b, 'Reverse', { x: filter }, { dims: [0, 1] });
  const swapped = transpose(b, flipped, [0, 1, 3, 2]); // [kh, kw, Cout, Cin]
  release(b, flipped);
  const dx = run(
    b,
    'Conv2D',
    { x: source, filter: swapped },
    {
      strides: [1, 1],
      dilations: [1, 1],
      pad: [
        [0, 0],
        [padTop, padBottom],
        [padLeft, padRight],
        [0, 0],
      ],
      dataFormat: 'NHWC',
      dimRoundingMode: undefined as never,
    },
  );
  release(b, swapped);
  if (source !== dy) release(b, source);
  return dx;
};

/** dy [N, Ho, Wo, C] with (s − 1) zero rows and columns between its pixels. */
export function dilate(b: WasmBackendLike, dy: TensorInfo, sh: number, sw: number): TensorInfo {
  const [n, ho, wo, c] = dy.shape as [number, number, number, number];
  const hd = (ho - 1) * sh + 1;
  const wd = (wo - 1) * sw + 1;
  const outInfo = b.makeOutput([n, hd, wd, c], 'float32');
  const out = heapF32(b, outInfo, n * hd * wd * c);
  const src = heapF32(b, dy, n * ho * wo * c);
  out.fill(0);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < ho; p++) {
      for (let r = 0; r < wo; r++) {
        const from = ((i * ho + p) * wo + r) * c;
        out.set(src.subarray(from, from + c), ((i * hd + p * sh) * wd + r * sw) * c);
      }
    }
  }
  return outInfo;
}

export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropInput',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput,
};
