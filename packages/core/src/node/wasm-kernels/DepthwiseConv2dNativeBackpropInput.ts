/**
 * DepthwiseConv2dNativeBackpropInput for the WASM backend, which tfjs 4.22
 * lacks (so MobileNets cannot train on WASM without it).
 *
 *   dx[n, h, w, c] = Σ_i,j,q dy[n, p, r, c·m + q] · W[i, j, c, q]
 *     where h = p·sh + i − padTop, w = r·sw + j − padLeft (m: channel multiplier)
 *
 * computed as a scatter from each dy pixel over its kh × kw window, channels
 * innermost so every read and write is contiguous, in one pass over the
 * WASM heap. A depthwise layer costs kh·kw multiply-adds per output value,
 * too little for XNNPACK's convolution setup (and its dilated-input
 * formulation for strides) to pay, and a JavaScript loop reads the heap
 * in place. tfjs's gradient refuses dilations above 1, so none reach here.
 */
import { type KernelConfig, type KernelFunc, type TensorInfo, backend_util, util } from '@tensorflow/tfjs-core';
import { type WasmBackendLike, heapF32 } from './compose.js';

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

export const depthwiseConv2dNativeBackpropInputConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropInput,
};
