/**
 * Conv2DBackpropInput for the WASM backend, through XNNPACK.
 *
 * The stock kernel is a plain loop outside XNNPACK and takes most of a
 * LeNet-5 step. For stride 1 the input gradient is a convolution of dy,
 * padded by (k − 1 − pad) before and enough after to give the input's size,
 * with the filter flipped in space and its channel axes swapped:
 *   dx = conv2d(pad(dy), transpose(reverse(W, [0, 1]), [0, 1, 3, 2]))
 * Strided convolutions (whose gradient needs a dilated dy) and NCHW keep the
 * stock kernel.
 */
import { type KernelConfig, type KernelFunc, type TensorInfo, backend_util } from '@tensorflow/tfjs-core';
import { type WasmBackendLike, release, run, stockKernel, transpose } from './compose.js';

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
  const { filterHeight: kh, filterWidth: kw, inHeight: h, inWidth: w, outHeight: ho, outWidth: wo } = info;
  const padTop = kh - 1 - info.padInfo.top;
  const padLeft = kw - 1 - info.padInfo.left;
  const padBottom = h - ho + info.padInfo.top;
  const padRight = w - wo + info.padInfo.left;
  const fast =
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dataFormat === 'channelsLast' &&
    dy.dtype === 'float32' &&
    Math.min(padTop, padLeft, padBottom, padRight) >= 0;
  if (!fast) {
    if (stock === undefined) throw new Error('Conv2DBackpropInput (wasm): no stock kernel to fall back on');
    return stock.kernelFunc(args);
  }
  const flipped = run(b, 'Reverse', { x: filter }, { dims: [0, 1] });
  const swapped = transpose(b, flipped, [0, 1, 3, 2]); // [kh, kw, Cout, Cin]
  release(b, flipped);
  const dx = run(
    b,
    'Conv2D',
    { x: dy, filter: swapped },
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
  return dx;
};

export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropInput',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput,
};
