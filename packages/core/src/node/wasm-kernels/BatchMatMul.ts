/**
 * BatchMatMul and _FusedMatMul for the WASM backend with transposed operands
 * routed through XNNPACK.
 *
 * The stock kernels take XNNPACK's fully-connected path only when neither
 * operand is transposed and the batch is 1; the backward pass of every dense
 * layer (dy·Wᵀ and xᵀ·dy) otherwise runs a blocked plain loop. An explicit
 * transpose (a fast copy) followed by the plain product is several times
 * faster.
 */
import { type KernelConfig, type KernelFunc, type TensorInfo, util } from '@tensorflow/tfjs-core';
import { type WasmBackendLike, release, stockKernel, transpose } from './compose.js';

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

function routed(name: 'BatchMatMul' | '_FusedMatMul'): KernelFunc {
  return (args) => {
    const stock = stockKernel(name);
    if (stock === undefined) throw new Error(`${name} (wasm): no stock kernel`);
    const { inputs, backend, attrs } = args;
    const b = backend as unknown as WasmBackendLike;
    const a = inputs.a as TensorInfo;
    const bm = inputs.b as TensorInfo;
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    const batched = util.sizeFromShape(a.shape.slice(0, -2)) > 1 || util.sizeFromShape(bm.shape.slice(0, -2)) > 1;
    if ((!transposeA && !transposeB) || batched || a.dtype !== 'float32') return stock.kernelFunc(args);
    const temps: TensorInfo[] = [];
    const at = transposeA ? transpose(b, a, swapLastTwo(a.shape.length)) : a;
    if (transposeA) temps.push(at);
    const bt = transposeB ? transpose(b, bm, swapLastTwo(bm.shape.length)) : bm;
    if (transposeB) temps.push(bt);
    const out = stock.kernelFunc({ inputs: { ...inputs, a: at, b: bt }, backend, attrs: { ...attrs, transposeA: false, transposeB: false } }) as TensorInfo;
    release(b, ...temps);
    return out;
  };
}

export const batchMatMulConfig: KernelConfig = { kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: routed('BatchMatMul') };
export const fusedMatMulConfig: KernelConfig = { kernelName: '_FusedMatMul', backendName: 'wasm', kernelFunc: routed('_FusedMatMul') };
