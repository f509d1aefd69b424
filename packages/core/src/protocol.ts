/** Version of the wire protocol (proto/tamp/v1). Bump on any change an older peer would misread. */
export const PROTOCOL_VERSION = 1;

/** Largest payload of one tensor chunk: grpc-js refuses messages over 4 MiB by default. */
export const MAX_CHUNK_BYTES = 1024 * 1024;

/**
 * Tensors of at least this many bytes, arriving in one 4-byte-aligned chunk,
 * are read in place from the received buffer. Smaller buffers may come from
 * Node's shared Buffer pool, which must never be kept or transferred.
 */
export const ZERO_COPY_MIN_BYTES = 64 * 1024;
