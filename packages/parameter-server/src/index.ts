// Node-only package: checksum tensors with zlib's native CRC-32.
import '@tamp/core/native-crc32';
export * from './placement.js';
export * from './shard.js';
export * from './server.js';
export * from './checkpoint.js';
export * from './client.js';
export * from './optimizers/index.js';
export * from './rpc/status.js';
export * from './rpc/header.js';
export * from './rpc/channel.js';
export * from './rpc/retry.js';
