/**
 * MaxPoolGrad for the WASM backend.
 *
 * tfjs-backend-wasm 4.22's kernel (and MaxPoolWithArgmax) start each window's
 * running maximum at std::numeric_limits<float>::min(), the smallest positive
 * float, not the lowest one: a window whose values are all <= 0 routes its
 * gradient to element 0 of the tensor instead of its maximum. Caffe's LeNet-5
 * pools convolutions without an activation, so most of its conv gradients
 * came out wrong. This kernel recomputes the argmax with tfjs-cpu's rule (the
 * first strict maximum in window order, so ties match the reference) in one
 * pass over the heap, channels innermost so every access is contiguous.
 */
import { type KernelConfig, type KernelFunc, type TensorInfo, backend_util, util } from '@tensorflow/tfjs-core';
import { type WasmBackendLike, heapF32 } from './compose.js';

interface Attrs {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

const maxPoolGrad: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as Attrs;
  const dy = inputs.dy as TensorInfo;
  const input = inputs.input as TensorInfo;
  if (input.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('MaxPoolGrad (wasm): only float32 is supported');
  const info = backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const dxInfo = b.makeOutput(input.shape, 'float32');
  const size = util.sizeFromShape(input.shape);
  const x = heapF32(b, input, size);
  const g = heapF32(b, dy, util.sizeFromShape(dy.shape));
  const dx = heapF32(b, dxInfo, size);
  dx.fill(0);
  const best = new Float32Array(c);
  const at = new Int32Array(c);
  for (let n = 0; n < batchSize; n++) {
    const xBatch = n * inHeight * inWidth * c;
    for (let oh = 0; oh < outHeight; oh++) {
      const h0 = oh * strideHeight - padTop;
      for (let ow = 0; ow < outWidth; ow++) {
        const w0 = ow * strideWidth - padLeft;
        best.fill(-Infinity);
        at.fill(-1);
        for (let fh = 0; fh < filterHeight; fh++) {
          const h = h0 + fh;
          if (h < 0 || h >= inHeight) continue;
          for (let fw = 0; fw < filterWidth; fw++) {
            const w = w0 + fw;
            if (w < 0 || w >= inWidth) continue;
            const base = xBatch + (h * inWidth + w) * c;
            for (let k = 0; k < c; k++) {
              const v = x[base + k] as number;
              if (v > (best[k] as number)) {
                best[k] = v;
                at[k] = base + k;
              }
            }
          }
        }
        const dyBase = ((n * outHeight + oh) * outWidth + ow) * c;
        for (let k = 0; k < c; k++) {
          const p = at[k] as number;
          if (p >= 0) dx[p] = (dx[p] as number) + (g[dyBase + k] as number);
        }
      }
    }
  }
  return dxInfo;
};

export const maxPoolGradConfig: KernelConfig = { kernelName: 'MaxPoolGrad', backendName: 'wasm', kernelFunc: maxPoolGrad };
