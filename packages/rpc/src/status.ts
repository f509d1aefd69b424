/**
 * The one place where errors cross the gRPC boundary. A TampError becomes the
 * gRPC status its category names, with its stable code in the trailing
 * metadata (`tamp-error-code`) so the client can rebuild the same typed
 * error; cancellation stays CANCELLED; anything else is logged by the server
 * and returned as UNKNOWN without internals.
 */
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { ERROR_CODES, type ErrorCode, type StatusKind, TampError, errorMessage } from '@tamp/core/base';

export const ERROR_CODE_KEY = 'tamp-error-code';

/** gRPC's status codes (numeric, as on the wire), for callers that inspect RpcError.grpcCode. */
export { status as GrpcStatus } from '@grpc/grpc-js';

const STATUS: Record<StatusKind, status> = {
  'invalid-argument': status.INVALID_ARGUMENT,
  'failed-precondition': status.FAILED_PRECONDITION,
  'not-found': status.NOT_FOUND,
  unavailable: status.UNAVAILABLE,
  unauthenticated: status.UNAUTHENTICATED,
  'permission-denied': status.PERMISSION_DENIED,
  unimplemented: status.UNIMPLEMENTED,
  'deadline-exceeded': status.DEADLINE_EXCEEDED,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
  internal: status.INTERNAL,
};

export function grpcStatusOf(kind: StatusKind): status {
  return STATUS[kind];
}

/**
 * Server side: turn anything thrown by a handler into a ServiceError for the
 * callback. Only a TampError's own message travels: it is written for the
 * caller; anything else may hold paths, stacks or peer state.
 */
export function toServiceError(error: unknown, log: (message: string) => void = () => {}): Partial<ServiceError> {
  if (error instanceof TampError) {
    const metadata = new Metadata();
    metadata.set(ERROR_CODE_KEY, error.code);
    return { code: STATUS[error.status], details: error.message, metadata };
  }
  if (typeof error === 'object' && error !== null && (error as { code?: unknown }).code === status.CANCELLED) {
    return { code: status.CANCELLED, details: 'cancelled' };
  }
  log(`internal error: ${error instanceof Error && error.stack !== undefined ? error.stack : errorMessage(error)}`);
  return { code: status.UNKNOWN, details: 'internal error in the server (see its log)' };
}

/** A client-side error that keeps the gRPC status and, when the server sent one, Tamp's code. */
export class RpcError extends TampError {
  readonly grpcCode: status;

  constructor(code: ErrorCode, grpcCode: status, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.grpcCode = grpcCode;
  }
}

const FALLBACK: Partial<Record<status, ErrorCode>> = {
  [status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [status.UNAVAILABLE]: 'PEER_UNAVAILABLE',
  [status.DEADLINE_EXCEEDED]: 'PEER_UNAVAILABLE',
  [status.FAILED_PRECONDITION]: 'JOB_MISMATCH',
  [status.UNAUTHENTICATED]: 'UNAUTHENTICATED',
  [status.PERMISSION_DENIED]: 'PERMISSION_DENIED',
};

/** Client side: rebuild a typed error from a gRPC error. `what` says which call to which peer failed. */
export function fromServiceError(error: unknown, what: string): TampError {
  if (error instanceof TampError) return error;
  const e = error as Partial<ServiceError>;
  const grpcCode = typeof e.code === 'number' ? e.code : status.UNKNOWN;
  const sent = e.metadata?.get(ERROR_CODE_KEY)[0];
  const code: ErrorCode =
    typeof sent === 'string' && sent in ERROR_CODES ? (sent as ErrorCode) : (FALLBACK[grpcCode] ?? 'JOB_FAILED');
  const details = e.details ?? errorMessage(error);
  return new RpcError(code, grpcCode, `${what}: ${details} (${status[grpcCode] ?? grpcCode})`, { cause: error });
}

/** Statuses a client may retry: the peer is (re)starting or the call timed out. */
export function isRetryable(error: unknown): boolean {
  const code = error instanceof RpcError ? error.grpcCode : (error as { code?: unknown }).code;
  return code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED || code === status.RESOURCE_EXHAUSTED;
}
