/** Version of the wire protocol (proto/tamp/v1). Bump on any change an older peer would misread. */
export const PROTOCOL_VERSION = 1;

/** Largest payload of one tensor chunk: grpc-js refuses messages over 4 MiB by default. */
export const MAX_CHUNK_BYTES = 1024 * 1024;
