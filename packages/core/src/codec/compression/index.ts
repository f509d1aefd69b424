export * from './fp16.js';
export * from './int8.js';
export * from './int4.js';
export * from './topk.js';
export * from './feedback.js';
export * from './dgc.js';
export * from './wire-codec.js';
export { addFloats, quantizeKernels, setQuantizeKernels } from './quantize-wasm.js';
