/**
 * @tamp/core/node-base: the Node-only parts that load no tfjs (atomic file
 * writes, heap tuning for cluster roles), for the parameter servers and the
 * CLI's role commands (base.ts says why). Also exported from @tamp/core/node.
 */
export * from './files.js';
export * from './heap-tuning.js';
