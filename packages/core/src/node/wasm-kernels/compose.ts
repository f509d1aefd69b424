/**
 * Calling the WASM backend's own kernels from inside a kernel: each call
 * returns a TensorInfo the backend owns, which the caller releases with
 * `release` once it is no longer needed.
 */
import { type KernelConfig, type NamedAttrMap, type NamedTensorInfoMap, type TensorInfo, getKernel } from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
export interface WasmBackendLike {
  disposeData(dataId: object, force?: boolean): boolean;
  makeOutput(shape: number[], dtype: 'float32' | 'int32'): TensorInfo;
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  wasm: { HEAPU8: Uint8Array };
}

/**
 * A Float32Array view of a tensor in the WASM heap. Views die when the heap
 * grows: take them after every allocation (makeOutput) a kernel makes.
 */
export function heapF32(backend: WasmBackendLike, info: TensorInfo, size: number): Float32Array {
  const data = backend.dataIdMap.get(info.dataId);
  if (data === undefined) throw new Error('tensor is not on the wasm backend');
  return new Float32Array(backend.wasm.HEAPU8.buffer, data.memoryOffset, size);
}

/**
 * Stock kernels as tfjs-backend-wasm registered them, recorded once before
 * Tamp replaces any (undefined: the stock backend has none).
 */
const stock = new Map<string, KernelConfig | undefined>();

export function recordStockKernel(name: string): KernelConfig | undefined {
  if (!stock.has(name)) stock.set(name, getKernel(name, 'wasm'));
  return stock.get(name);
}

export function stockKernel(name: string): KernelConfig | undefined {
  return stock.has(name) ? stock.get(name) : getKernel(name, 'wasm');
}

export function run(backend: WasmBackendLike, name: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
  const kernel = stockKernel(name);
  if (kernel === undefined) throw new Error(`the wasm backend has no ${name} kernel`);
  return kernel.kernelFunc({ inputs, attrs, backend: backend as never }) as TensorInfo;
}

export function release(backend: WasmBackendLike, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

export function transpose(backend: WasmBackendLike, x: TensorInfo, perm: number[]): TensorInfo {
  return run(backend, 'Transpose', { x }, { perm });
}
