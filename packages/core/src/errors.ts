/**
 * Typed errors. Every error Tamp throws on purpose is a TampError with a
 * stable `code` (never renamed: scripts, tests and remote peers match on it),
 * a message that says what went wrong and how to fix it, and the underlying
 * `cause` when there is one.
 *
 * `status` is the gRPC status category the error maps to at a service
 * boundary; the mapping to numeric gRPC codes lives in one place (@tamp/rpc,
 * status.ts), so this module stays free of gRPC.
 */

export type StatusKind =
  | 'invalid-argument'
  | 'failed-precondition'
  | 'not-found'
  | 'unavailable'
  | 'unauthenticated'
  | 'permission-denied'
  | 'unimplemented'
  | 'deadline-exceeded'
  | 'resource-exhausted'
  | 'internal';

export const ERROR_CODES = {
  /** A tensor, option or argument has the wrong shape, type or value. Not retried. */
  INVALID_ARGUMENT: 'invalid-argument',
  /** A command-line usage error (unknown flag, missing value). */
  USAGE: 'invalid-argument',
  /** A requested tfjs backend or inference device cannot be brought up. */
  BACKEND_UNAVAILABLE: 'unavailable',
  /** A dataset's files are not installed or not found. */
  DATASET_NOT_FOUND: 'not-found',
  /** A dataset file is truncated, has the wrong magic number or inconsistent counts. */
  DATASET_CORRUPT: 'invalid-argument',
  /** A tensor chunk stream lacks a chunk (gap or truncated stream). */
  CHUNK_MISSING: 'invalid-argument',
  /** A tensor's bytes do not match its checksum. */
  CHUNK_CORRUPT: 'invalid-argument',
  /** A chunk's header is inconsistent (shape, dtype, offsets, sizes). */
  CHUNK_INVALID: 'invalid-argument',
  /** A wire codec that this build does not implement. */
  CODEC_UNSUPPORTED: 'unimplemented',
  /** A model file is missing. */
  MODEL_NOT_FOUND: 'not-found',
  /** A model file exists but cannot be read (bad JSON, weights of the wrong size, corrupt container). */
  MODEL_INVALID: 'invalid-argument',
  /** A model name that the zoo does not know. */
  MODEL_UNKNOWN: 'invalid-argument',
  /** A file written by a newer Tamp. */
  VERSION_UNSUPPORTED: 'failed-precondition',
  /** A model uses a layer, activation or option the inference engine does not implement. */
  MODEL_UNSUPPORTED: 'unimplemented',
  /** A model used after dispose(). */
  MODEL_DISPOSED: 'failed-precondition',
  /** The GPU failed: device lost, out of memory, or a shader that did not compile. */
  GPU_ERROR: 'internal',
  /** A request for another job: its job id differs from the server's. Not retried. */
  JOB_MISMATCH: 'failed-precondition',
  /** A peer speaks another protocol version: upgrade so every role runs the same Tamp. */
  PROTOCOL_MISMATCH: 'failed-precondition',
  /** A worker id the job does not know. */
  UNKNOWN_WORKER: 'failed-precondition',
  /** A shard or chief that has not been initialised yet (retried by clients). */
  NOT_READY: 'unavailable',
  /** A tensor named after no variable of the shard. */
  UNKNOWN_VARIABLE: 'invalid-argument',
  /** A tensor whose shape, slice or dtype differs from its variable's. */
  SHAPE_MISMATCH: 'invalid-argument',
  /** A gradient containing NaN or Infinity. */
  NON_FINITE: 'invalid-argument',
  /** A push whose update would make a variable or an optimizer slot NaN or Infinity (a huge but finite gradient): refused, nothing changed. */
  NON_FINITE_UPDATE: 'invalid-argument',
  /** A shard went back to a checkpoint's step (a parameter server was restored): pull the current parameters and continue from its step. */
  ROLLED_BACK: 'failed-precondition',
  /** A bad cluster description (flags or TF_CONFIG). */
  CLUSTER_CONFIG: 'invalid-argument',
  /** Transport security asked for in a way that cannot work (a token without TLS, a missing certificate file, a non-loopback listener without TLS). */
  SECURITY_CONFIG: 'invalid-argument',
  /** A call without valid credentials (no token, a wrong token). Not retried. */
  UNAUTHENTICATED: 'unauthenticated',
  /** An authenticated caller asked for something its role may not do (a worker calling a chief-only method, a push without its slot's token). Not retried. */
  PERMISSION_DENIED: 'permission-denied',
  /** A peer stayed unreachable through every retry. */
  PEER_UNAVAILABLE: 'unavailable',
  /** The training job failed (a role exited, every worker was lost, a checkpoint could not be written). */
  JOB_FAILED: 'internal',
  /** --ps-replicas outside 0..1, or replicas with fewer than 2 parameter servers (a backup must live on another one). */
  REPLICA_CONFIG: 'invalid-argument',
  /** A server's queue is full: retry later (HTTP 503). */
  OVERLOADED: 'unavailable',
  /** A request's deadline passed before it ran (HTTP 504). */
  DEADLINE_EXCEEDED: 'deadline-exceeded',
  /** A request body larger than the server accepts (HTTP 413). */
  REQUEST_TOO_LARGE: 'resource-exhausted',
  /** A model or version that the server does not hold (HTTP 404). */
  MODEL_NOT_LOADED: 'not-found',
  /** A file the user named (an image, an output folder) does not exist. Models and datasets say MODEL_NOT_FOUND / DATASET_NOT_FOUND. */
  FILE_NOT_FOUND: 'not-found',
  /** A path the user named cannot be used as asked: a folder where a file is expected (or the reverse), no permission, another OS error. */
  FILE_ACCESS: 'failed-precondition',
  /** This JavaScript runtime or host cannot run Tamp (a big-endian CPU). */
  PLATFORM_UNSUPPORTED: 'unimplemented',
} as const satisfies Record<string, StatusKind>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface TampErrorOptions {
  cause?: unknown;
}

export class TampError extends Error {
  readonly code: ErrorCode;
  readonly status: StatusKind;

  constructor(code: ErrorCode, message: string, options?: TampErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = ERROR_CODES[code];
  }
}

/** Bad input: a wrong shape, dtype, NaN, unknown name, out-of-range option. */
export class InvalidArgumentError extends TampError {
  constructor(message: string, options?: TampErrorOptions) {
    super('INVALID_ARGUMENT', message, options);
  }
}

/** Thrown by the CLI's argument parser; the CLI exits with code 2. */
export class UsageError extends TampError {
  constructor(message: string, options?: TampErrorOptions) {
    super('USAGE', message, options);
  }
}

/** A backend or device that was asked for and cannot be used. `reasons` holds why, per backend tried. */
export class BackendUnavailableError extends TampError {
  readonly reasons: ReadonlyArray<{ name: string; reason: string }>;

  constructor(message: string, reasons: ReadonlyArray<{ name: string; reason: string }> = [], options?: TampErrorOptions) {
    super('BACKEND_UNAVAILABLE', message, options);
    this.reasons = reasons;
  }
}

/** Dataset files missing (DATASET_NOT_FOUND) or damaged (DATASET_CORRUPT). `file` names the file. */
export class DatasetError extends TampError {
  readonly file: string | undefined;

  constructor(code: 'DATASET_NOT_FOUND' | 'DATASET_CORRUPT', message: string, file?: string, options?: TampErrorOptions) {
    super(code, message, options);
    this.file = file;
  }
}

/** A tensor chunk stream that is incomplete, corrupt or inconsistent. `tensor` names the tensor. */
export class CodecError extends TampError {
  readonly tensor: string | undefined;

  constructor(
    code: 'CHUNK_MISSING' | 'CHUNK_CORRUPT' | 'CHUNK_INVALID' | 'CODEC_UNSUPPORTED',
    message: string,
    tensor?: string,
    options?: TampErrorOptions,
  ) {
    super(code, message, options);
    this.tensor = tensor;
  }
}

/** A model that is missing, unknown or unreadable. */
export class ModelError extends TampError {
  constructor(
    code: 'MODEL_NOT_FOUND' | 'MODEL_INVALID' | 'MODEL_UNKNOWN' | 'VERSION_UNSUPPORTED' | 'MODEL_UNSUPPORTED' | 'MODEL_DISPOSED',
    message: string,
    options?: TampErrorOptions,
  ) {
    super(code, message, options);
  }
}

/** The GPU failed while loading or running a model (device lost, out of memory, shader compilation). */
export class GpuError extends TampError {
  constructor(message: string, options?: TampErrorOptions) {
    super('GPU_ERROR', message, options);
  }
}

/**
 * A path the user named that the file system refused: missing (FILE_NOT_FOUND),
 * or a folder for a file, no permission and the like (FILE_ACCESS). `path`
 * names it; `osCode` is the system's code (ENOENT, EISDIR, EACCES, ...).
 */
export class FileError extends TampError {
  readonly path: string;
  readonly osCode: string | undefined;

  constructor(code: 'FILE_NOT_FOUND' | 'FILE_ACCESS', message: string, path: string, osCode?: string, options?: TampErrorOptions) {
    super(code, message, options);
    this.path = path;
    this.osCode = osCode;
  }
}

export type ClusterErrorCode =
  | 'JOB_MISMATCH'
  | 'PROTOCOL_MISMATCH'
  | 'UNKNOWN_WORKER'
  | 'NOT_READY'
  | 'UNKNOWN_VARIABLE'
  | 'SHAPE_MISMATCH'
  | 'NON_FINITE'
  | 'NON_FINITE_UPDATE'
  | 'ROLLED_BACK'
  | 'CLUSTER_CONFIG'
  | 'SECURITY_CONFIG'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'PEER_UNAVAILABLE'
  | 'JOB_FAILED'
  | 'REPLICA_CONFIG';

/** Errors of the cluster trainer: refused requests, bad cluster descriptions, lost peers. */
export class ClusterError extends TampError {
  constructor(code: ClusterErrorCode, message: string, options?: TampErrorOptions) {
    super(code, message, options);
  }
}

export function isTampError(error: unknown): error is TampError {
  return error instanceof TampError;
}

/** The message of any thrown value, for logs. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
