/// <reference types="@webgpu/types" preserve="true" />
/** @tamp/core/node: datasets from disk and npm, model files, Node backends (tfjs-node, Dawn). */
export * from './native-crc32.js';
export * from './heap-tuning.js';
export * from './wasm-kernels/register.js';
export * from './datasets/idx.js';
export * from './datasets/mnist.js';
export * from './datasets/idx-folder.js';
export * from './datasets/registry.js';
export * from './files.js';
export * from './user-paths.js';
export * from './model-files.js';
export * from './webgpu-dawn.js';
export * from './backends.js';
export * from './train-single.js';
export * from './png.js';
