/** The cluster's shared vocabulary: browser-safe, no gRPC (ARCHITECTURE.md, "@tamp/core"). */
export * from './consistency.js';
export * from './placement.js';
export * from './shard-config.js';
