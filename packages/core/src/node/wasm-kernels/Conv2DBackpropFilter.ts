/**
 * Conv2DBackpropFilter for the WASM backend, which tfjs 4.22 lacks (so CNNs
 * cannot train on WASM at all without it).
 *
 * The filter gradient of an NHWC convolution is itself a convolution, which
 * runs on XNNPACK through the stock Conv2D kernel:
 *   dW[i,j,c,o] = Σ_n Σ_p,q x[n, p·s + i − padTop, q·s + j − padLeft, c] · dy[n,p,q,o]
 * Transpose x to [Cin, H, W, N] (channels become the batch) and dy to
 * [Ho, Wo, N, Cout] (the batch becomes the input channels): their convolution,
 * with the forward stride as dilation and padding chosen so the output is
 * kh × kw, is dW in [Cin, kh, kw, Cout] layout; one more transpose gives
 * [kh, kw, Cin, Cout].
 *
 * A 1×1 filter at stride 1 without padding (every pointwise convolution of
 * a MobileNet) is a plain product instead: dW = xᵀ·dy over the N·H·W rows,
 * one transpose of x and XNNPACK's fully-connected path. The convolution
 * above would run it as one Ho × Wo "filter" sliding nowhere, which XNNPACK
 * does 3-15x slower (measured on shapes-mobilenet-detector's pointwise
 * layers at batch 32: 199 → 13 ms, 37 → 6, 19 → 6). An im2col product for
 * 3×3 filters did not pay: building the columns in JavaScript cost 1.5-8x
 * the whole convolution path.
 *
 * NCHW input falls back to a transpose to NHWC and back.
 */
import { type KernelConfig, type KernelFunc, type TensorInfo, backend_util, util } from '@tensorflow/tfjs-core';
import { type WasmBackendLike, release, run, transpose } from './compose.js';

interface Attrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

function filterGradNHWC(backend: WasmBackendLike, x: TensorInfo, dy: TensorInfo, attrs: Attrs): TensorInfo {
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, inHeight: h, inWidth: w, outHeight: ho, outWidth: wo } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && padTop === 0 && padLeft === 0 && ho === h && wo === w) return pointwiseFilterGrad(backend, x, dy);
  // Padding after the input that makes the output exactly kh × kw. It is
  // negative when the forward convolution never reached the last rows
  // (stride not dividing the input): those rows are cropped instead.
  let padBottom = kh + (ho - 1) * sh - h - padTop;
  let padRight = kw + (wo - 1) * sw - w - padLeft;

  let xt = transpose(backend, x, [3, 1, 2, 0]); // [Cin, H, W, N]
  if (padBottom < 0 || padRight < 0) {
    const keepH = h + Math.min(0, padBottom);
    const keepW = w + Math.min(0, padRight);
    const cropped = run(backend, 'Slice', { x: xt }, { begin: [0, 0, 0, 0], size: [xt.shape[0] as number, keepH, keepW, xt.shape[3] as number] });
    release(backend, xt);
    xt = cropped;
    padBottom = Math.max(0, padBottom);
    padRight = Math.max(0, padRight);
  }
  const dyt = transpose(backend, dy, [1, 2, 0, 3]); // [Ho, Wo, N, Cout]
  const conv = run(
    backend,
    'Conv2D',
    { x: xt, filter: dyt },
    {
      strides: [1, 1],
      dilations: [sh, sw],
      pad: [
        [0, 0],
        [padTop, padBottom],
        [padLeft, padRight],
        [0, 0],
      ],
      dataFormat: 'NHWC',
      dimRoundingMode: undefined as never,
    },
  ); // [Cin, kh, kw, Cout]
  release(backend, xt, dyt);
  const dw = transpose(backend, conv, [1, 2, 0, 3]);
  release(backend, conv);
  return dw;
}

/**
 * dW [1, 1, Cin, Cout] = x[rows, Cin]ᵀ · dy[rows, Cout], rows = N·H·W. The
 * operand with fewer channels is the one transposed (the big copy), so
 * when Cout < Cin it computes dWᵀ = dyᵀ · x and transposes the small result.
 */
function pointwiseFilterGrad(backend: WasmBackendLike, x: TensorInfo, dy: TensorInfo): TensorInfo {
  const cin = x.shape[3] as number;
  const cout = dy.shape[3] as number;
  const rows = util.sizeFromShape(x.shape) / cin;
  const x2 = run(backend, 'Reshape', { x }, { shape: [1, rows, cin] });
  const dy2 = run(backend, 'Reshape', { x: dy }, { shape: [1, rows, cout] });
  let product: TensorInfo; // [1, Cin, Cout]
  if (cin <= cout) {
    const xt = transpose(backend, x2, [0, 2, 1]); // [1, Cin, rows]
    product = run(backend, 'BatchMatMul', { a: xt, b: dy2 }, { transposeA: false, transposeB: false });
    release(backend, xt);
  } else {
    const dyt = transpose(backend, dy2, [0, 2, 1]); // [1, Cout, rows]
    const productT = run(backend, 'BatchMatMul', { a: dyt, b: x2 }, { transposeA: false, transposeB: false }); // [1, Cout, Cin]
    product = transpose(backend, productT, [0, 2, 1]);
    release(backend, dyt, productT);
  }
  release(backend, x2, dy2);
  const dw = run(backend, 'Reshape', { x: product }, { shape: [1, 1, cin, cout] });
  release(backend, product);
  return dw;
}

const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as Attrs;
  const x = inputs.x as TensorInfo;
  const dy = inputs.dy as TensorInfo;
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('Conv2DBackpropFilter (wasm): only float32 is supported');
  if (a.dataFormat === 'NCHW') {
    const xh = transpose(b, x, [0, 2, 3, 1]);
    const dyh = transpose(b, dy, [0, 2, 3, 1]);
    const dw = filterGradNHWC(b, xh, dyh, { ...a, dataFormat: 'NHWC' });
    release(b, xh, dyh);
    return dw;
  }
  return filterGradNHWC(b, x, dy, a);
};

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter,
};
