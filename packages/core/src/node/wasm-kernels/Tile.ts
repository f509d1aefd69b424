/**
 * Tile for the WASM backend. tfjs-core's batch-norm gradient tiles the
 * [1, 1, 1, C] inverse standard deviation to the whole [N, H, W, C]
 * activation, once per batch-norm layer per step; the stock kernel computes
 * every output element's source index with divisions and took a fifth of a
 * MobileNetV2 step and over a third of a ResNet-20 step. Here the output is
 * written row by row (a row: the innermost dimension tiled), each row one
 * block copy of a source row repeated, and a run of rows that reads the
 * same source row (a leading dimension of size 1 tiled) is filled by
 * doubling copies of the first. 4-byte dtypes only; bool keeps the stock kernel.
 */
import { type KernelConfig, type KernelFunc, type TensorInfo, util } from '@tensorflow/tfjs-core';
import { type WasmBackendLike, stockKernel } from './compose.js';

function heapI32(backend: WasmBackendLike, info: TensorInfo, size: number): Int32Array {
  const data = backend.dataIdMap.get(info.dataId);
  if (data === undefined) throw new Error('tensor is not on the wasm backend');
  return new Int32Array(backend.wasm.HEAPU8.buffer, data.memoryOffset, size);
}

const tile: KernelFunc = (args) => {
  const b = args.backend as unknown as WasmBackendLike;
  const x = args.inputs.x as TensorInfo;
  const reps = (args.attrs as unknown as { reps: number[] }).reps;
  if ((x.dtype !== 'float32' && x.dtype !== 'int32') || x.shape.length === 0) {
    const stock = stockKernel('Tile');
    if (stock === undefined) throw new Error('the wasm backend has no Tile kernel');
    return stock.kernelFunc(args);
  }
  const rank = x.shape.length;
  const inShape = x.shape;
  const outShape = inShape.map((d, i) => d * (reps[i] as number));
  const outInfo = b.makeOutput(outShape, x.dtype);
  const outSize = util.sizeFromShape(outShape);
  if (outSize === 0) return outInfo;
  const src = heapI32(b, x, util.sizeFromShape(inShape));
  const out = heapI32(b, outInfo, outSize);
  const inRow = inShape[rank - 1] as number;
  const outRow = outShape[rank - 1] as number;
  const rows = outSize / outRow;
  const inStrides = util.computeStrides(inShape); // rank − 1 entries
  const outer = outShape.slice(0, rank - 1);
  const index = new Array<number>(rank - 1).fill(0);
  let row = 0;
  while (row < rows) {
    let from = 0;
    for (let d = 0; d < rank - 1; d++) from += ((index[d] as number) % (inShape[d] as number)) * (inStrides[d] as number);
    const at = row * outRow;
    const source = src.subarray(from, from + inRow);
    for (let k = 0; k < outRow; k += inRow) out.set(source, at + k);
    // Rows until the next source row differ only in dimensions of input size 1: double the copy over them.
    let run = 1;
    for (let d = rank - 2; d >= 0 && (inShape[d] as number) === 1 && index.slice(d + 1).every((v) => v === 0); d--) run *= outer[d] as number;
    if (run > 1) {
      let filled = outRow;
      const total = run * outRow;
      while (filled < total) {
        const n = Math.min(filled, total - filled);
        out.copyWithin(at + filled, at, at + n);
        filled += n;
      }
    }
    row += run;
    // Advance the row index by `run`.
    let carry = run;
    for (let d = rank - 2; d >= 0 && carry > 0; d--) {
      const v = (index[d] as number) + carry;
      index[d] = v % (outer[d] as number);
      carry = Math.floor(v / (outer[d] as number));
    }
  }
  return outInfo;
};

export const tileConfig: KernelConfig = { kernelName: 'Tile', backendName: 'wasm', kernelFunc: tile };
