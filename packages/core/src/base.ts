/**
 * @tamp/core/base: the parts of @tamp/core that load no tfjs (errors, the
 * protocol version, codecs and wire compression, cluster placement and
 * shard configuration, optimizer settings, seeded randomness). The
 * parameter servers, @tamp/rpc and the CLI's argument parsing and role
 * commands import from here, so a parameter server starts without loading
 * tfjs (ARCHITECTURE.md, "@tamp/core"). Everything here is also exported
 * from the root.
 */
export * from './errors.js';
export * from './version.js';
export * from './protocol.js';
export * from './random.js';
export { crc32, crc32Portable, setCrc32Implementation } from './codec/crc32.js';
export * from './codec/tensor-codec.js';
export * from './codec/compression/index.js';
export * from './cluster/index.js';
export * from './train/optimizer-settings.js';
export * from './metrics/percentile.js';
export * as wasm from './wasm/encoder.js';
