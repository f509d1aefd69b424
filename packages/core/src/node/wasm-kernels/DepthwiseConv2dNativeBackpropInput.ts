/**
 * DepthwiseConv2dNativeBackpropInput for the WASM backend, which tfjs 4.22
 * lacks (so MobileNets cannot train on WASM without it).
 *
 *   dx[n, h, w, c] = Σ_i,j,q dy[n, p, r, c·m + q] · W[i, j, c, q]
 *     where h = p·sh + i − padTop, w = r·sw + j − padLeft (m: channel multiplier)
 *
 * With channel multiplier 1 (every MobileNet) that is itself a depthwise
 * convolution, as Conv2DBackpropInput's is a convolution: dy (dilated by the
 * stride, zeros between its pixels) padded by (k − 1 − pad) before and enough
 * after to give the input's size, with the filter flipped in space, on
 * XNNPACK's depthwise kernel (the stock DepthwiseConv2dNative). It multiplies
 * the dilation's zeros too (4x the work at stride 2) and is still 4-20x
 * faster than a JavaScript loop (shapes-mobilenet-detector's layers at batch
 * 32). A channel multiplier above 1 sums over several dy channels per input
 * channel, which is no depthwise convolution: those layers are a scatter
 * from each dy pixel over its kh × kw window, channels innermost, in one
 * pass over the WASM heap. tfjs's gradient refuses dilations above 1, so
 * none reach here.
 */
import { type KernelConfig, type KernelFunc, type TensorInfo, backend_util, util } from '@tensorflow/tfjs-core';
import { type WasmBackendLike, heapF32, release, run } from './compose.js';
import { dilate } from './Conv2DBackpropInput.js';

interface Attrs {
  strides: [number, number] | number;
  dilations: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

const depthwiseBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as Attrs;
  const dy = inputs.dy as TensorInfo;
  const filter = inputs.filter as TensorInfo;
  if (dy.dtype !== 'float32' || filter.dtype !== 'float32') throw new Error('DepthwiseConv2dNativeBackpropInput (wasm): only float32 is supported');
  const info = backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad, a.dimRoundingMode, true);
  // tfjs's DepthwiseConv2dNative gradient asserts dilation 1 before calling this kernel.
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) throw new Error('DepthwiseConv2dNativeBackpropInput (wasm): dilations must be 1');
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, outChannels, strideHeight, strideWidth, filterHeight: kh, filterWidth: kw } = info;
  const m = outChannels / c;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  if (m === 1) {
    const fast = throughDepthwise(b, dy, filter, info);
    if (fast !== undefined) return fast;
  }
  const dxInfo = b.makeOutput(a.inputShape, 'float32');
  const dx = heapF32(b, dxInfo, util.sizeFromShape(a.inputShape));
  const g = heapF32(b, dy, util.sizeFromShape(dy.shape));
  const f = heapF32(b, filter, util.sizeFromShape(filter.shape));
  dx.fill(0);
  for (let n = 0; n < batchSize; n++) {
    const dxBatch = n * inHeight * inWidth * c;
    for (let p = 0; p < outHeight; p++) {
      const h0 = p * strideHeight - padTop;
      for (let r = 0; r < outWidth; r++) {
        const w0 = r * strideWidth - padLeft;
        const gBase = ((n * outHeight + p) * outWidth + r) * outChannels;
        for (let i = 0; i < kh; i++) {
          const h = h0 + i;
          if (h < 0 || h >= inHeight) continue;
          for (let j = 0; j < kw; j++) {
            const w = w0 + j;
            if (w < 0 || w >= inWidth) continue;
            const xBase = dxBatch + (h * inWidth + w) * c;
            const fBase = (i * kw + j) * outChannels;
            if (m === 1) {
              for (let k = 0; k < c; k++) dx[xBase + k] = (dx[xBase + k] as number) + (g[gBase + k] as number) * (f[fBase + k] as number);
            } else {
              for (let k = 0; k < c; k++) {
                let sum = 0;
                for (let q = 0; q < m; q++) sum += (g[gBase + k * m + q] as number) * (f[fBase + k * m + q] as number);
                dx[xBase + k] = (dx[xBase + k] as number) + sum;
              }
            }
          }
        }
      }
    }
  }
  return dxInfo;
};

/** dx as a depthwise convolution of the dilated, padded dy with the flipped filter; undefined where the padding after would be negative. */
function throughDepthwise(b: WasmBackendLike, dy: TensorInfo, filter: TensorInfo, info: backend_util.Conv2DInfo): TensorInfo | undefined {
  const { filterHeight: kh, filterWidth: kw, inHeight: h, inWidth: w, outHeight: ho, outWidth: wo, strideHeight: sh, strideWidth: sw } = info;
  const hd = (ho - 1) * sh + 1;
  const wd = (wo - 1) * sw + 1;
  const padTop = kh - 1 - info.padInfo.top;
  const padLeft = kw - 1 - info.padInfo.left;
  const padBottom = h - hd + info.padInfo.top;
  const padRight = w - wd + info.padInfo.left;
  if (Math.min(padTop, padLeft, padBottom, padRight) < 0) return undefined;
  const source = sh === 1 && sw === 1 ? dy : dilate(b, dy, sh, sw);
  const flipped = run(b, 'Reverse', { x: filter }, { dims: [0, 1] });
  const dx = run(
    b,
    'DepthwiseConv2dNative',
    { x: source, filter: flipped },
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
  release(b, flipped);
  if (source !== dy) release(b, source);
  return dx;
}

export const depthwiseConv2dNativeBackpropInputConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropInput,
};
