/** Version of the wire protocol (proto/tamp/v1). Bump on any change an older peer would misread. */
export const PROTOCOL_VERSION = 3;

/** Largest payload of one tensor chunk: grpc-js refuses messages over 4 MiB by default. */
export const MAX_CHUNK_BYTES = 1024 * 1024;

/**
 * Chunks packed into one message (PushRequest, PullResponse, AssignRequest:
 * `chunk` then `more_chunks`) carry at most this many bytes with their headers:
 * a model of a megabyte or two (LeNet-300-100, LeNet-5) travels in one
 * message each way, where one message per tensor cost both ends about
 * 0.3 ms per extra message. A single chunk always fits (MAX_CHUNK_BYTES).
 */
export const MAX_MESSAGE_CHUNK_BYTES = 2 * MAX_CHUNK_BYTES;

/**
 * Tensors of at least this many bytes, arriving in one 4-byte-aligned chunk,
 * are read in place from the received buffer. Smaller buffers may come from
 * Node's shared Buffer pool, which must never be kept or transferred.
 */
export const ZERO_COPY_MIN_BYTES = 64 * 1024;
