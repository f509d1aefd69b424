/**
 * Server side: every service's handlers are written through these three
 * wrappers. Each checks the request header first (job id, protocol
 * version), then runs the handler; whatever the handler throws (or its
 * promise rejects with) goes back as a status through toServiceError: a
 * TampError as its own status with its code in the trailing metadata,
 * cancellation as CANCELLED, anything else logged here and sent as UNKNOWN
 * without its message.
 */
import type { Metadata, ServerWritableStream, handleClientStreamingCall, handleServerStreamingCall, handleUnaryCall } from '@grpc/grpc-js';
import { type WithHeader, checkHeader } from './header.js';
import { refuseMalformed } from './malformed.js';
import { metadataValue } from './role-auth.js';
import { toServiceError } from './status.js';

export interface HandlerContext {
  /** The job this server serves: requests of any other job are refused. */
  readonly jobId: string;
  /** Where errors that are not TampErrors are logged (the caller sees UNKNOWN only). */
  readonly log?: (message: string) => void;
}

/** Who is calling, as far as a handler needs to know (role secrets and slot tokens travel as metadata: role-auth.ts). */
export interface CallInfo {
  /** The first string value the caller sent under `key`. */
  metadata(key: string): string | undefined;
}

function callInfo(metadata: Metadata): CallInfo {
  return { metadata: (key) => metadataValue(metadata, key) };
}

/** A server-streaming call, as its handler sees it. */
export interface ResponseStream<Res> {
  /** Send one message; resolves once the stream takes more (flow control) or the call is cancelled. */
  write(message: Res): Promise<void>;
  /** The client cancelled (or its deadline passed): further writes are dropped. */
  readonly cancelled: boolean;
  /** Aborted when the call is cancelled. */
  readonly signal: AbortSignal;
}

/** A client-streaming call's handler: one per call, made by the `open` function given to clientStream. */
export interface ClientStreamHandler<Req, Res> {
  /** Each message in order; the first has passed the header check. Throwing refuses the call. */
  onMessage(message: Req, first: boolean): void;
  /** The client half-closed the stream: the answer (throwing or rejecting refuses the call). */
  onEnd(): Res | Promise<Res>;
  /** The call is being refused with this error (before its status is sent); not called on cancellation. */
  onRefused?(error: unknown): void;
}

export interface ServiceHandlers {
  /** A unary method. `name` names it in error messages. */
  readonly unary: <Req extends WithHeader, Res>(name: string, handle: (request: Req, caller: CallInfo) => Res | Promise<Res>) => handleUnaryCall<Req, Res>;
  /** A server-streaming method: `handle` writes the messages; the stream ends when it resolves. */
  readonly serverStream: <Req extends WithHeader, Res>(
    name: string,
    handle: (request: Req, out: ResponseStream<Res>, caller: CallInfo) => Promise<void>,
  ) => handleServerStreamingCall<Req, Res>;
  /** A client-streaming method: the header is checked on the first message, which alone must carry it. */
  readonly clientStream: <Req extends WithHeader, Res>(name: string, open: (caller: CallInfo) => ClientStreamHandler<Req, Res>) => handleClientStreamingCall<Req, Res>;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return value instanceof Promise;
}

function responseStream<Req, Res>(call: ServerWritableStream<Req, Res>): ResponseStream<Res> {
  const abort = new AbortController();
  call.once('cancelled', () => abort.abort());
  return {
    get cancelled() {
      return call.cancelled;
    },
    signal: abort.signal,
    write(message: Res): Promise<void> {
      if (call.cancelled || call.write(message)) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          call.off('drain', done);
          abort.signal.removeEventListener('abort', done);
          resolve();
        };
        call.once('drain', done);
        abort.signal.addEventListener('abort', done, { once: true });
      });
    },
  };
}

/** The three wrappers, bound to one server's job id and log. */
export function serviceHandlers(context: HandlerContext): ServiceHandlers {
  const { jobId } = context;
  const log = context.log ?? (() => {});
  const fail = (error: unknown) => toServiceError(error, log);

  return {
    unary<Req extends WithHeader, Res>(name: string, handle: (request: Req, caller: CallInfo) => Res | Promise<Res>): handleUnaryCall<Req, Res> {
      return (call, callback) => {
        let result: Res | Promise<Res>;
        try {
          refuseMalformed(call.request, name);
          checkHeader(call.request.header, jobId, name);
          result = handle(call.request, callInfo(call.metadata));
        } catch (error) {
          callback(fail(error), null);
          return;
        }
        // A plain value is answered at once (before anything the handler scheduled runs).
        if (isPromise(result)) {
          result.then(
            (response) => callback(null, response),
            (error: unknown) => callback(fail(error), null),
          );
        } else callback(null, result);
      };
    },

    serverStream<Req extends WithHeader, Res>(
      name: string,
      handle: (request: Req, out: ResponseStream<Res>, caller: CallInfo) => Promise<void>,
    ): handleServerStreamingCall<Req, Res> {
      const run = async (call: ServerWritableStream<Req, Res>): Promise<void> => {
        try {
          refuseMalformed(call.request, name);
          checkHeader(call.request.header, jobId, name);
          await handle(call.request, responseStream(call), callInfo(call.metadata));
          if (!call.cancelled) call.end();
        } catch (error) {
          if (!call.cancelled) call.emit('error', fail(error));
        }
      };
      return (call) => void run(call);
    },

    clientStream<Req extends WithHeader, Res>(name: string, open: (caller: CallInfo) => ClientStreamHandler<Req, Res>): handleClientStreamingCall<Req, Res> {
      return (call, callback) => {
        const handler = open(callInfo(call.metadata));
        let first = true;
        let done = false;
        const refuse = (error: unknown) => {
          if (done) return;
          done = true;
          handler.onRefused?.(error);
          callback(fail(error), null);
        };
        call.on('data', (message: Req) => {
          if (done) return;
          try {
            refuseMalformed(message, name);
            const isFirst = first;
            first = false;
            if (isFirst) checkHeader(message.header, jobId, name);
            handler.onMessage(message, isFirst);
          } catch (error) {
            refuse(error);
          }
        });
        call.on('error', () => {
          // Cancelled or broken stream: nothing is answered; the handler drops what arrived.
          done = true;
        });
        call.on('end', () => {
          if (done) return;
          let result: Res | Promise<Res>;
          try {
            result = handler.onEnd();
          } catch (error) {
            refuse(error);
            return;
          }
          done = true;
          if (isPromise(result)) {
            result.then(
              (response) => callback(null, response),
              (error: unknown) => {
                handler.onRefused?.(error);
                callback(fail(error), null);
              },
            );
          } else callback(null, result);
        });
      };
    },
  };
}
