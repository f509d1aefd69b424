/**
 * Handlers of public protocols that Tamp serves to other projects' clients
 * (the Open Inference Protocol's GRPCInferenceService): their requests carry
 * no Tamp request header, so there is no job id or protocol version to check.
 * Errors go back exactly as in serviceHandlers (toServiceError). The handler
 * sees the call's deadline, so work the caller no longer waits for is not done.
 */
import type { ServerUnaryCall, handleUnaryCall } from '@grpc/grpc-js';
import { toServiceError } from './status.js';
import { refuseMalformed } from './malformed.js';

/** What a public handler may know of its call. */
export interface PublicCall {
  /** When the caller stops waiting, in Date.now() milliseconds; undefined: no deadline. */
  readonly deadline: number | undefined;
  /** Aborted when the caller cancels (or its deadline passes). */
  readonly signal: AbortSignal;
}

function callOf(call: ServerUnaryCall<unknown, unknown>): PublicCall {
  const abort = new AbortController();
  call.once('cancelled', () => abort.abort());
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return { deadline: Number.isFinite(ms) ? ms : undefined, signal: abort.signal };
}

/** A unary method of a public protocol. `log` receives errors that are not TampErrors (the caller sees UNKNOWN). */
export function publicUnary<Req, Res>(handle: (request: Req, call: PublicCall) => Res | Promise<Res>, log: (message: string) => void = () => {}): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let result: Res | Promise<Res>;
    try {
      refuseMalformed(call.request, 'request');
      result = handle(call.request, callOf(call));
    } catch (error) {
      callback(toServiceError(error, log), null);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(error, log), null),
      );
    } else callback(null, result);
  };
}
