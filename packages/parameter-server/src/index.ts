// Node-only package: checksum tensors with zlib's native CRC-32.
import '@tamp/core/native-crc32';
// Placement moved to @tamp/core (cluster/placement.ts); still exported here for importers of @tamp/parameter-server.
export { type Placement, type VariablePart, type VariableSpec, partKey, placeVariables, shardLoads } from '@tamp/core/base';
export * from './split.js';
export * from './wire/shard-config.js';
export * from './shard.js';
export * from './server.js';
export * from './checkpoint.js';
export * from './checkpoint-location.js';
export { ShardAuthority } from './authority.js';
export { MAX_ASSIGN_BYTES, MAX_BATCH_SIZE } from './request-bounds.js';
export * from './client.js';
export * from './parameter-client.js';
export { ReplicaClient } from './replica-client.js';
export * from './optimizers/index.js';
export * from './wire/push-encoder.js';
export * from './wire/pull-reference.js';
export * from './wire/auto.js';
