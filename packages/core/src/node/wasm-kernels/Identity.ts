/**
 * Identity on WASM without a copy. tfjs clones every tensor it keeps for the
 * backward pass (Engine.saveTensorsForBackwardMode → Identity), and stock
 * tfjs-backend-wasm 4.22 copies the whole buffer each time; the cpu backend
 * instead shares the buffer and counts a reference, which is what this does.
 * Kernels never write into their inputs and Variable.assign swaps buffers
 * rather than writing into them, so a shared buffer is never changed under
 * a clone. String tensors (not in the WASM heap) go to the stock kernel.
 */
import { Identity, type IdentityInputs, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { stockKernel } from './compose.js';

interface RefCountingBackend {
  incRef(dataId: object): void;
}

const identity: KernelFunc = (args) => {
  const x = (args.inputs as IdentityInputs).x as TensorInfo;
  if (x.dtype === 'string') {
    const stock = stockKernel(Identity);
    if (stock === undefined) throw new Error('the wasm backend has no Identity kernel for strings');
    return stock.kernelFunc(args);
  }
  (args.backend as unknown as RefCountingBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
};

export const identityConfig: KernelConfig = { kernelName: Identity, backendName: 'wasm', kernelFunc: identity };
