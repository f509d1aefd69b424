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

function callOf(call: ServerUnaryCall<unknown, unknown>): { publicCall: PublicCall; answered: () => void } {
  const abort = new AbortController();
  const onCancel = () => abort.abort();
  call.once('cancelled', onCancel);
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return {
    publicCall: { deadline: Number.isFinite(ms) ? ms : undefined, signal: abort.signal },
    // grpc-js emits 'cancelled' when any call's stream closes, answered or not: after the answer it is no
    // cancellation, and aborting then would build a DOMException (a stack trace) for every call.
    answered: () => call.removeListener('cancelled', onCancel),
  };
}

/** A unary method of a public protocol. `log` receives errors that are not TampErrors (the caller sees UNKNOWN). */
export function publicUnary<Req, Res>(handle: (request: Req, call: PublicCall) => Res | Promise<Res>, log: (message: string) => void = () => {}): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let result: Res | Promise<Res>;
    const { publicCall, answered } = callOf(call);
    try {
      refuseMalformed(call.request, 'request');
      result = handle(call.request, publicCall);
    } catch (error) {
      answered();
      callback(toServiceError(error, log), null);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (response) => {
          answered();
          callback(null, response);
        },
        (error: unknown) => {
          answered();
          callback(toServiceError(error, log), null);
        },
      );
    } else {
      answered();
      callback(null, result);
    }
  };
}
