/**
 * DepthwiseConv2dNativeBackpropFilter for the WASM backend, which tfjs 4.22
 * lacks (so MobileNets cannot train on WASM without it).
 *
 *   dW[i, j, c, q] = Σ_n,p,r x[n, p·sh + i − padTop, r·sw + j − padLeft, c] · dy[n, p, r, c·m + q]
 *
 * One pass over dy in memory order, channels innermost, accumulating into a
 * float64 filter-sized buffer (the sums run over every output pixel of the
 * batch; float64 keeps them as exact as the cpu backend's). The filter is
 * tiny (kh·kw·C·m values) and each dy value is used kh·kw times, so a loop
 * over the WASM heap in place beats any composition of stock kernels.
 * tfjs's gradient refuses dilations above 1, so none reach here.
 */
import { type KernelConfig, type KernelFunc, type TensorInfo, backend_util, util } from '@tensorflow/tfjs-core';
import { type WasmBackendLike, heapF32 } from './compose.js';

interface Attrs {
  strides: [number, number] | number;
  dilations: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

const depthwiseBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as Attrs;
  const x = inputs.x as TensorInfo;
  const dy = inputs.dy as TensorInfo;
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('DepthwiseConv2dNativeBackpropFilter (wasm): only float32 is supported');
  const info = backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, a.dilations, a.pad, a.dimRoundingMode, true);
  // tfjs's DepthwiseConv2dNative gradient asserts dilation 1 before calling this kernel.
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) throw new Error('DepthwiseConv2dNativeBackpropFilter (wasm): dilations must be 1');
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, outChannels, strideHeight, strideWidth, filterHeight: kh, filterWidth: kw } = info;
  const m = outChannels / c;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const acc = new Float64Array(kh * kw * outChannels);
  const dwInfo = b.makeOutput(a.filterShape, 'float32');
  const xs = heapF32(b, x, util.sizeFromShape(x.shape));
  const g = heapF32(b, dy, util.sizeFromShape(dy.shape));
  for (let n = 0; n < batchSize; n++) {
    const xBatch = n * inHeight * inWidth * c;
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
            const xBase = xBatch + (h * inWidth + w) * c;
            const fBase = (i * kw + j) * outChannels;
            if (m === 1) {
              for (let k = 0; k < c; k++) acc[fBase + k] = (acc[fBase + k] as number) + (xs[xBase + k] as number) * (g[gBase + k] as number);
            } else {
              for (let k = 0; k < c; k++) {
                const v = xs[xBase + k] as number;
                for (let q = 0; q < m; q++) acc[fBase + k * m + q] = (acc[fBase + k * m + q] as number) + v * (g[gBase + k * m + q] as number);
              }
            }
          }
        }
      }
    }
  }
  heapF32(b, dwInfo, acc.length).set(acc);
  return dwInfo;
};

export const depthwiseConv2dNativeBackpropFilterConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropFilter,
};
