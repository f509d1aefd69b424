/** @tamp/compress: browser-safe quantization, the .tamp format and the tfjs bridge. File IO and the pipeline: @tamp/compress/node. */
export * from './quantize.js';
export * from './format/tamp-format.js';
export * from './tfjs-bridge.js';
export * from './fold-batchnorm.js';
