/**
 * @tamp/rpc over real servers on free ports: a small JSON-serialized test
 * service stands in for the generated ones (this package knows no proto).
 */
import {
  type CallOptions,
  type Client,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  InterceptingCall,
  type Metadata,
  ServerInterceptingCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ClusterError, InvalidArgumentError, PROTOCOL_VERSION, TampError } from '@tamp/core';
import {
  type ClientInterceptor,
  GrpcStatus,
  type RequestHeaderFields,
  RpcError,
  type RunningRpcServer,
  type ServerInterceptor,
  callClientStream,
  callServerStream,
  callUnary,
  clientConstructor,
  createClient,
  requestHeader,
  serviceHandlers,
  startServer,
  toServiceError,
} from './index.js';

const JOB = 'server-secret-job';

interface ProbeRequest {
  header?: RequestHeaderFields | undefined;
  action: 'ok' | 'typed' | 'invalid' | 'unavailable' | 'crash' | 'hang';
  n: number;
}
interface ProbeResponse {
  text: string;
  n: number;
}
type Callback<T> = (error: ServiceError | null, response: T) => void;
interface ProbeClient extends Client {
  call(request: ProbeRequest, metadata: Metadata, options: Partial<CallOptions>, callback: Callback<ProbeResponse>): ClientUnaryCall;
  list(request: ProbeRequest, metadata?: Metadata, options?: Partial<CallOptions>): ClientReadableStream<ProbeResponse>;
  sum(metadata: Metadata, options: Partial<CallOptions>, callback: Callback<ProbeResponse>): ClientWritableStream<ProbeRequest>;
}

const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString('utf8')) as unknown,
};
const method = (name: string, requestStream: boolean, responseStream: boolean) => ({
  path: `/tamp.test.Probe/${name}`,
  requestStream,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});
const PROBE = { call: method('Call', false, false), list: method('List', false, true), sum: method('Sum', true, false) };
const ProbeClientCtor = clientConstructor<ProbeClient>(PROBE, 'tamp.test.Probe');

/** What each action makes a handler do. */
function act(action: ProbeRequest['action'], signal?: AbortSignal): Promise<void> | void {
  switch (action) {
    case 'ok':
      return;
    case 'typed':
      throw new ClusterError('UNKNOWN_WORKER', 'worker "w-9" is not part of this job');
    case 'invalid':
      throw new InvalidArgumentError('n must be positive');
    case 'unavailable':
      throw new ClusterError('NOT_READY', 'not initialised yet');
    case 'crash':
      throw new Error('secret internals: /srv/state.bin at offset 42');
    case 'hang':
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, 5_000);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
  }
}

let server: RunningRpcServer;
let address: string;
let client: ProbeClient;
const logged: string[] = [];
const calls = { call: 0, list: 0, sum: 0 };
const seenProbeHeader: unknown[] = [];

const tagCalls: ServerInterceptor = (_method, call) =>
  new ServerInterceptingCall(call, {
    start(next) {
      next({
        onReceiveMetadata(metadata, nextMetadata) {
          seenProbeHeader.push(metadata.get('x-probe')[0]);
          nextMetadata(metadata);
        },
      });
    },
  });
const addProbeHeader: ClientInterceptor = (options, nextCall) =>
  new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('x-probe', 'from-client');
      next(metadata, listener);
    },
  });

beforeAll(async () => {
  const rpc = serviceHandlers({ jobId: JOB, log: (m) => logged.push(m) });
  const implementation = {
    call: rpc.unary<ProbeRequest, ProbeResponse>('call', async (req) => {
      calls.call++;
      await act(req.action);
      return { text: 'done', n: req.n * 2 };
    }),
    list: rpc.serverStream<ProbeRequest, ProbeResponse>('list', async (req, out) => {
      calls.list++;
      for (let i = 0; i < req.n; i++) await out.write({ text: `item ${i}`, n: i });
      await act(req.action, out.signal);
    }),
    sum: rpc.clientStream<ProbeRequest, ProbeResponse>('sum', () => {
      let total = 0;
      let action: ProbeRequest['action'] = 'ok';
      return {
        onMessage(msg, first) {
          if (first) {
            calls.sum++;
            action = msg.action;
          }
          total += msg.n;
        },
        onEnd: async () => {
          await act(action);
          return { text: 'sum', n: total };
        },
      };
    }),
  };
  server = await startServer([{ definition: PROBE, implementation }], { host: '127.0.0.1', port: 0 }, { interceptors: [tagCalls] });
  address = `127.0.0.1:${server.port}`;
  client = createClient(ProbeClientCtor, address, { interceptors: [addProbeHeader] });
});

afterAll(async () => {
  client.close();
  await server.close();
});

beforeEach(() => {
  logged.length = 0;
  calls.call = calls.list = calls.sum = 0;
});

const header = requestHeader(JOB);
const opts = { what: 'probe', timeoutMs: 10_000 };

async function failure(p: Promise<unknown>): Promise<RpcError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected the call to fail').toBeInstanceOf(RpcError);
  return error as RpcError;
}

describe('@tamp/rpc', () => {
  it('answers unary, server-stream and client-stream calls', async () => {
    expect(await callUnary(client, 'call', { header, action: 'ok', n: 21 }, opts)).toEqual({ text: 'done', n: 42 });
    const items = await callServerStream(client, 'list', { header, action: 'ok', n: 3 }, opts, () => {
      const got: number[] = [];
      return { onMessage: (m) => got.push(m.n), finish: () => got };
    });
    expect(items).toEqual([0, 1, 2]);
    const sum = await callClientStream(client, 'sum', () => [{ header, action: 'ok' as const, n: 1 }, { action: 'ok' as const, n: 2 }, { action: 'ok' as const, n: 3 }], opts);
    expect(sum).toEqual({ text: 'sum', n: 6 });
  });

  it('runs the configured interceptors on both sides', async () => {
    seenProbeHeader.length = 0;
    await callUnary(client, 'call', { header, action: 'ok', n: 1 }, opts);
    expect(seenProbeHeader).toEqual(['from-client']);
  });

  it('a typed error thrown in a handler arrives as the same typed error, from every kind of call', async () => {
    const errors = [
      await failure(callUnary(client, 'call', { header, action: 'typed', n: 1 }, opts)),
      await failure(callServerStream(client, 'list', { header, action: 'typed', n: 2 }, opts, () => ({ onMessage: () => {}, finish: () => 0 }))),
      await failure(callClientStream(client, 'sum', () => [{ header, action: 'typed' as const, n: 1 }], opts)),
    ];
    for (const e of errors) {
      expect(e).toBeInstanceOf(TampError);
      expect(e.code).toBe('UNKNOWN_WORKER');
      expect(e.grpcCode).toBe(GrpcStatus.FAILED_PRECONDITION);
      expect(e.message).toMatch(/^probe: worker "w-9" is not part of this job \(FAILED_PRECONDITION\)$/);
    }
    expect(logged).toEqual([]);
  });

  it('refuses a wrong job id or protocol version before the handler runs, without naming the server\'s job', async () => {
    const otherJob = await failure(callUnary(client, 'call', { header: requestHeader('my-job'), action: 'ok', n: 1 }, opts));
    expect([otherJob.code, otherJob.grpcCode]).toEqual(['JOB_MISMATCH', GrpcStatus.FAILED_PRECONDITION]);
    expect(otherJob.message).toMatch(/job "my-job" reached a server of another job/);
    expect(otherJob.message).not.toContain(JOB);

    const otherVersion = await failure(callClientStream(client, 'sum', () => [{ header: { jobId: JOB, protocolVersion: PROTOCOL_VERSION + 1 }, action: 'ok' as const, n: 1 }], opts));
    expect([otherVersion.code, otherVersion.grpcCode]).toEqual(['PROTOCOL_MISMATCH', GrpcStatus.FAILED_PRECONDITION]);
    expect(otherVersion.message).toMatch(new RegExp(`protocol version ${PROTOCOL_VERSION + 1} is not this server's ${PROTOCOL_VERSION}`));

    const noHeader = await failure(callServerStream(client, 'list', { action: 'ok', n: 1 }, opts, () => ({ onMessage: () => {}, finish: () => 0 })));
    expect(noHeader.code).toBe('JOB_MISMATCH');
    expect(calls).toEqual({ call: 0, list: 0, sum: 0 });
  });

  it('a call past its deadline fails with DEADLINE_EXCEEDED', async () => {
    const e = await failure(callUnary(client, 'call', { header, action: 'hang', n: 1 }, { what: 'probe', timeoutMs: 100 }));
    expect(e.grpcCode).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    expect(e.code).toBe('PEER_UNAVAILABLE');
    const s = await failure(callServerStream(client, 'list', { header, action: 'hang', n: 1 }, { what: 'probe', timeoutMs: 100 }, () => ({ onMessage: () => {}, finish: () => 0 })));
    expect(s.grpcCode).toBe(GrpcStatus.DEADLINE_EXCEEDED);
  });

  it('retries UNAVAILABLE a bounded number of times with doubling waits, each less up to half of it at random (jitter)', async () => {
    for (const [random, expected] of [
      [0, [5, 10, 20]],
      [0.5, [3.75, 7.5, 15]],
    ] as const) {
      calls.call = 0;
      const waits: number[] = [];
      const retry = { deadlineMs: 60_000, maxAttempts: 4, baseDelayMs: 5, random: () => random, onRetry: (_e: unknown, _attempt: number, delayMs: number) => waits.push(delayMs) };
      const e = await failure(callUnary(client, 'call', { header, action: 'unavailable', n: 1 }, { ...opts, retry }));
      expect([e.code, e.grpcCode]).toEqual(['NOT_READY', GrpcStatus.UNAVAILABLE]);
      expect(calls.call).toBe(4);
      expect(waits).toEqual(expected);
    }
  });

  it('retries a peer that is not listening (UNAVAILABLE from the channel), then gives up', async () => {
    const closed = await startServer([], { host: '127.0.0.1', port: 0 });
    await closed.close();
    const gone = createClient(ProbeClientCtor, `127.0.0.1:${closed.port}`);
    const attempts: number[] = [];
    const retry = { deadlineMs: 60_000, maxAttempts: 3, baseDelayMs: 5, onRetry: (_e: unknown, attempt: number) => attempts.push(attempt) };
    const e = await failure(callUnary(gone, 'call', { header, action: 'ok', n: 1 }, { what: 'probe of a closed port', timeoutMs: 5_000, retry }));
    gone.close();
    expect(e.grpcCode).toBe(GrpcStatus.UNAVAILABLE);
    expect(e.code).toBe('PEER_UNAVAILABLE');
    expect(attempts).toEqual([1, 2]);
  });

  it('does not retry INVALID_ARGUMENT', async () => {
    const waits: number[] = [];
    const retry = { deadlineMs: 60_000, maxAttempts: 5, baseDelayMs: 5, onRetry: () => waits.push(1) };
    const e = await failure(callUnary(client, 'call', { header, action: 'invalid', n: 1 }, { ...opts, retry }));
    expect([e.code, e.grpcCode]).toEqual(['INVALID_ARGUMENT', GrpcStatus.INVALID_ARGUMENT]);
    expect(calls.call).toBe(1);
    expect(waits).toEqual([]);
  });

  it('turns any other exception into UNKNOWN without its internals, and logs it on the server', async () => {
    const e = await failure(callUnary(client, 'call', { header, action: 'crash', n: 1 }, opts));
    expect(e.grpcCode).toBe(GrpcStatus.UNKNOWN);
    expect(e.code).toBe('JOB_FAILED');
    expect(e.message).toBe('probe: internal error in the server (see its log) (UNKNOWN)');
    expect(logged.join('\n')).toContain('secret internals: /srv/state.bin at offset 42');
    const s = await failure(callClientStream(client, 'sum', () => [{ header, action: 'crash' as const, n: 1 }], opts));
    expect(s.message).not.toContain('secret');
  });

  it('maps a cancelled handler to CANCELLED', () => {
    const cancelled = Object.assign(new Error('Cancelled on client'), { code: GrpcStatus.CANCELLED });
    expect(toServiceError(cancelled)).toMatchObject({ code: GrpcStatus.CANCELLED, details: 'cancelled' });
  });
});
