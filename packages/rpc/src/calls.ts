/**
 * Client side: every call to a Tamp service goes through these three
 * helpers. Each gives every attempt its own deadline, turns a failed status
 * back into the typed error the server threw (fromServiceError), and, when
 * asked, retries retryable statuses with backoff (withRetry). A method is
 * named by its key on a generated client (`'shardStatus'`), so request and
 * response types come from the generated code.
 */
import {
  type CallOptions as GrpcCallOptions,
  type ClientReadableStream,
  type ClientWritableStream,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { type RetryOptions, withRetry } from './retry.js';
import { fromServiceError } from './status.js';

export interface RpcCallOptions {
  /** The call and its peer, for error messages: e.g. `push to 10.0.0.2:7000`. */
  readonly what: string;
  /** Deadline of each attempt (ms from its start). */
  readonly timeoutMs: number;
  /** Retry UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED; without it, one attempt. Only for idempotent calls. */
  readonly retry?: RetryOptions;
}

type Callback<Res> = (error: ServiceError | null, response: Res) => void;
type Streams = ClientReadableStream<unknown> | ClientWritableStream<unknown>;

// grpc-js clients overload each method; TypeScript infers from the last
// overload, which generated code makes the complete form.
type UnaryTypes<F> = F extends (request: infer Req, metadata: Metadata, options: Partial<GrpcCallOptions>, callback: Callback<infer Res>) => infer R
  ? R extends Streams
    ? never
    : { req: Req; res: Res }
  : never;
type ServerStreamTypes<F> = F extends (request: infer Req, metadata?: Metadata, options?: Partial<GrpcCallOptions>) => ClientReadableStream<infer Res> ? { req: Req; res: Res } : never;
type ClientStreamTypes<F> = F extends (metadata: Metadata, options: Partial<GrpcCallOptions>, callback: Callback<infer Res>) => ClientWritableStream<infer Req>
  ? { req: Req; res: Res }
  : never;

/** Keys of a client's unary methods, and their request and response types. */
export type UnaryMethod<C> = { [K in keyof C]: [UnaryTypes<C[K]>] extends [never] ? never : K }[keyof C];
export type UnaryRequest<C, K extends keyof C> = UnaryTypes<C[K]>['req'];
export type UnaryResponse<C, K extends keyof C> = UnaryTypes<C[K]>['res'];
export type ServerStreamMethod<C> = { [K in keyof C]: [ServerStreamTypes<C[K]>] extends [never] ? never : K }[keyof C];
export type ServerStreamRequest<C, K extends keyof C> = ServerStreamTypes<C[K]>['req'];
export type ServerStreamResponse<C, K extends keyof C> = ServerStreamTypes<C[K]>['res'];
export type ClientStreamMethod<C> = { [K in keyof C]: [ClientStreamTypes<C[K]>] extends [never] ? never : K }[keyof C];
export type ClientStreamRequest<C, K extends keyof C> = ClientStreamTypes<C[K]>['req'];
export type ClientStreamResponse<C, K extends keyof C> = ClientStreamTypes<C[K]>['res'];

/** Collects one server stream's messages into a result; a fresh one per attempt. */
export interface StreamCollector<Res, T> {
  /** Each message in order. Throwing cancels the call and rejects with that error. */
  onMessage(message: Res): void;
  /** The stream ended with OK: the result (throwing rejects with that error). */
  finish(): T;
}

function callOptions(timeoutMs: number): Partial<GrpcCallOptions> {
  return { deadline: new Date(Date.now() + timeoutMs) };
}

function method(client: object, key: PropertyKey): (...args: unknown[]) => unknown {
  const fn = (client as Record<PropertyKey, unknown>)[key];
  // Keys are typed as the client's methods: a missing one is a caller's type error.
  if (typeof fn !== 'function') throw new Error(`rpc: the client has no method ${String(key)}`);
  return (...args: unknown[]) => (fn as (...a: unknown[]) => unknown).apply(client, args);
}

function attempt<T>(options: RpcCallOptions, run: () => Promise<T>): Promise<T> {
  return options.retry === undefined ? run() : withRetry(run, options.retry);
}

/** Write every message, waiting for the stream to drain when it asks; then half-close. */
function writeAll<T>(stream: ClientWritableStream<T>, messages: Iterable<T>): Promise<void> {
  return new Promise((resolve, reject) => {
    const it = messages[Symbol.iterator]();
    const pump = () => {
      for (;;) {
        const next = it.next();
        if (next.done === true) {
          stream.end();
          resolve();
          return;
        }
        if (!stream.write(next.value)) {
          stream.once('drain', pump);
          return;
        }
      }
    };
    stream.once('error', reject);
    pump();
  });
}

/** One unary call. */
export function callUnary<C extends object, K extends UnaryMethod<C>>(client: C, key: K, request: UnaryRequest<C, K>, options: RpcCallOptions): Promise<UnaryResponse<C, K>> {
  const call = method(client, key);
  return attempt(
    options,
    () =>
      new Promise((resolve, reject) => {
        call(request, new Metadata(), callOptions(options.timeoutMs), (error: ServiceError | null, response: UnaryResponse<C, K>) => {
          if (error !== null) reject(fromServiceError(error, options.what));
          else resolve(response);
        });
      }),
  );
}

/** One server-streaming call: `collect()` makes the collector of each attempt. */
export function callServerStream<C extends object, K extends ServerStreamMethod<C>, T>(
  client: C,
  key: K,
  request: ServerStreamRequest<C, K>,
  options: RpcCallOptions,
  collect: () => StreamCollector<ServerStreamResponse<C, K>, T>,
): Promise<T> {
  const call = method(client, key);
  return attempt(
    options,
    () =>
      new Promise((resolve, reject) => {
        const collector = collect();
        const stream = call(request, new Metadata(), callOptions(options.timeoutMs)) as ClientReadableStream<ServerStreamResponse<C, K>>;
        stream.on('data', (message: ServerStreamResponse<C, K>) => {
          try {
            collector.onMessage(message);
          } catch (error) {
            stream.cancel();
            reject(error as Error);
          }
        });
        stream.on('error', (error: ServiceError) => reject(fromServiceError(error, options.what)));
        stream.on('end', () => {
          try {
            resolve(collector.finish());
          } catch (error) {
            reject(error as Error);
          }
        });
      }),
  );
}

/** One client-streaming call: `messages()` yields the messages of each attempt (serialized one at a time, as the stream takes them). */
export function callClientStream<C extends object, K extends ClientStreamMethod<C>>(
  client: C,
  key: K,
  messages: () => Iterable<ClientStreamRequest<C, K>>,
  options: RpcCallOptions,
): Promise<ClientStreamResponse<C, K>> {
  const call = method(client, key);
  return attempt(
    options,
    () =>
      new Promise((resolve, reject) => {
        const stream = call(new Metadata(), callOptions(options.timeoutMs), (error: ServiceError | null, response: ClientStreamResponse<C, K>) => {
          if (error !== null) reject(fromServiceError(error, options.what));
          else resolve(response);
        }) as ClientWritableStream<ClientStreamRequest<C, K>>;
        writeAll(stream, messages()).catch(() => {
          // The callback above reports the call's status.
        });
      }),
  );
}
