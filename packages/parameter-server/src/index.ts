// Node-only package: checksum tensors with zlib's native CRC-32.
import '@tamp/core/native-crc32';
export * from './placement.js';
export * from './shard.js';
export * from './server.js';
export * from './checkpoint.js';
export * from './client.js';
export * from './optimizers/index.js';
