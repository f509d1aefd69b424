/**
 * Tamp's WASM training kernels, registered when @tamp/core/node is imported:
 *
 * | kernel                | stock tfjs 4.22 on wasm     | Tamp                                    |
 * |-----------------------|-----------------------------|-----------------------------------------|
 * | Conv2DBackpropFilter  | missing: CNNs cannot train  | convolution of transposed x and dy (XNNPACK) |
 * | Conv2DBackpropInput   | plain loop                  | convolution of dy (dilated by the stride) with the flipped filter (XNNPACK) |
 * | BatchMatMul, _FusedMatMul with a transposed operand | plain loop | explicit transpose, then XNNPACK |
 * | MaxPoolGrad           | wrong for windows <= 0      | correct argmax, cpu's tie rule, one pass |
 * | Identity              | copies the buffer           | shares it (a reference), as cpu does    |
 * | DepthwiseConv2dNativeBackpropInput  | missing: MobileNets cannot train | scatter over the heap, channels innermost |
 * | DepthwiseConv2dNativeBackpropFilter | missing: MobileNets cannot train | one pass over dy, float64 sums |
 * | Tile                  | index arithmetic per element: 1/5 of a MobileNetV2 step, 1/3 of ResNet-20's (batch-norm gradient) | block copies of rows, doubling over repeated rows |
 *
 * `setTampWasmKernels(false)` restores the stock kernels (benchmarks compare
 * the two in one process).
 */
import '@tensorflow/tfjs-backend-wasm';
import { type KernelConfig, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import { batchMatMulConfig, fusedMatMulConfig } from './BatchMatMul.js';
import { recordStockKernel } from './compose.js';
import { conv2DBackpropFilterConfig } from './Conv2DBackpropFilter.js';
import { conv2DBackpropInputConfig } from './Conv2DBackpropInput.js';
import { depthwiseConv2dNativeBackpropFilterConfig } from './DepthwiseConv2dNativeBackpropFilter.js';
import { depthwiseConv2dNativeBackpropInputConfig } from './DepthwiseConv2dNativeBackpropInput.js';
import { identityConfig } from './Identity.js';
import { maxPoolGradConfig } from './MaxPoolGrad.js';
import { tileConfig } from './Tile.js';

export const TAMP_WASM_KERNELS: readonly KernelConfig[] = [
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  batchMatMulConfig,
  fusedMatMulConfig,
  maxPoolGradConfig,
  identityConfig,
  depthwiseConv2dNativeBackpropInputConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  tileConfig,
];

let enabled = new Set<string>();

/**
 * Register Tamp's WASM kernels (all, or the named ones) or, with `on` false,
 * restore the stock kernels. Benchmarks use subsets to measure each change.
 */
export function setTampWasmKernels(on: boolean, names: readonly string[] = TAMP_WASM_KERNELS.map((k) => k.kernelName)): void {
  const wanted = new Set(on ? names : []);
  for (const config of TAMP_WASM_KERNELS) {
    const name = config.kernelName;
    if (wanted.has(name) === enabled.has(name)) continue;
    const stock = recordStockKernel(name);
    if (wanted.has(name)) {
      if (stock !== undefined) unregisterKernel(name, 'wasm');
      // The stock kernel's setup (binding its WASM function) runs when the
      // backend starts; a replacement that delegates to it must keep it.
      const setupFunc = stock?.setupFunc ?? config.setupFunc;
      registerKernel(setupFunc !== undefined ? { ...config, setupFunc } : config);
    } else {
      unregisterKernel(name, 'wasm');
      if (stock !== undefined) registerKernel(stock);
    }
  }
  enabled = wanted;
}

/** True when every Tamp WASM kernel is registered. */
export function tampWasmKernelsEnabled(): boolean {
  return TAMP_WASM_KERNELS.every((k) => enabled.has(k.kernelName));
}

setTampWasmKernels(true);
