/** @tamp/compress/node: files and the compression pipeline. */
export * from './files.js';
export * from './tfjs-export.js';
export * from './compress.js';
export * from './finetune.js';
export * from './plot.js';
