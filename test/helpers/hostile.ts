/**
 * A hostile client, as an attacker on the same network would build it: the
 * Tamp services loaded at test time from the `.proto` files with
 * @grpc/proto-loader (not Tamp's generated code), raw calls with any
 * metadata, and garbage bytes through a client whose serializer sends them
 * as they are. Plus the servers under attack in their own process
 * (hostile-target.ts), whose memory and state the tests read over IPC.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  type Client,
  type ClientDuplexStream,
  type GrpcObject,
  Metadata,
  type ServiceClientConstructor,
  type ServiceError,
  credentials,
  loadPackageDefinition,
  makeGenericClientConstructor,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { REPO } from './tamp.js';

const PROTO_DIR = join(REPO, 'proto');
const definition = loadSync(['tamp/v1/parameter_server.proto', 'tamp/v1/coordinator.proto'], {
  includeDirs: [PROTO_DIR],
  longs: String,
  enums: Number,
  defaults: true,
});
const v1 = (loadPackageDefinition(definition).tamp as GrpcObject).v1 as GrpcObject;
export const ParameterServerProto = v1.ParameterServer as ServiceClientConstructor;
export const CoordinatorProto = v1.Coordinator as ServiceClientConstructor;

/** Each service's methods as the .proto declares them. */
export const METHODS = {
  ParameterServer: Object.entries(ParameterServerProto.service).map(([name, m]) => ({ name, path: m.path, requestStream: m.requestStream, responseStream: m.responseStream })),
  Coordinator: Object.entries(CoordinatorProto.service).map(([name, m]) => ({ name, path: m.path, requestStream: m.requestStream, responseStream: m.responseStream })),
};

export type Message = Record<string, unknown>;
export interface Outcome {
  readonly code: status;
  readonly details: string;
  readonly response?: unknown;
  readonly messages?: number;
}

export function metadata(entries: Readonly<Record<string, string>> = {}): Metadata {
  const m = new Metadata();
  for (const [k, v] of Object.entries(entries)) m.set(k, v);
  return m;
}

export function protoClient(Ctor: ServiceClientConstructor, port: number): Client {
  return new Ctor(`127.0.0.1:${port}`, credentials.createInsecure(), { 'grpc.max_send_message_length': 64 * 1024 * 1024 });
}

const deadline = (ms: number) => ({ deadline: new Date(Date.now() + ms) });
const failed = (e: ServiceError): Outcome => ({ code: e.code, details: e.details });

type Callback = (e: ServiceError | null, r?: unknown) => void;
type AnyMethod = (...args: unknown[]) => unknown;

/** A unary call; never rejects: the outcome carries the status. */
export function unary(client: Client, method: string, request: unknown, md = metadata(), ms = 10_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, AnyMethod>)[method] as AnyMethod;
    const cb: Callback = (e, r) => resolve(e !== null ? failed(e) : { code: status.OK, details: '', response: r });
    fn.call(client, request, md, deadline(ms), cb);
  });
}

/** A client-streaming call: writes each message (as the stream takes them), then ends or cancels. */
export function clientStream(client: Client, method: string, messages: Iterable<unknown>, md = metadata(), options: { ms?: number; cancel?: boolean } = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, AnyMethod>)[method] as AnyMethod;
    const cb: Callback = (e, r) => resolve(e !== null ? failed(e) : { code: status.OK, details: '', response: r });
    const stream = fn.call(client, md, deadline(options.ms ?? 20_000), cb) as ClientDuplexStream<unknown, unknown>;
    const it = messages[Symbol.iterator]();
    const pump = () => {
      for (;;) {
        const next = it.next();
        if (next.done === true) {
          if (options.cancel === true) stream.cancel();
          else stream.end();
          return;
        }
        if (!stream.write(next.value)) {
          stream.once('drain', pump);
          return;
        }
      }
    };
    stream.on('error', () => undefined);
    pump();
  });
}

/** A server-streaming call: counts the messages, resolves with the final status. */
export function serverStream(client: Client, method: string, request: unknown, md = metadata(), ms = 10_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, AnyMethod>)[method] as AnyMethod;
    const stream = fn.call(client, request, md, deadline(ms)) as NodeJS.EventEmitter;
    let messages = 0;
    stream.on('data', () => messages++);
    stream.on('error', (e: ServiceError) => resolve({ ...failed(e), messages }));
    stream.on('status', (s: { code: status; details: string }) => {
      if (s.code === status.OK) resolve({ code: s.code, details: s.details, messages });
    });
  });
}

const raw = (b: Buffer) => b;
/** A client that sends bytes as they are to any method path: malformed protobuf as a hostile client can send it. */
export function rawClient(port: number, methods: ReadonlyArray<{ name: string; path: string; requestStream: boolean; responseStream: boolean }>): Client {
  const def = Object.fromEntries(
    methods.map((m) => [m.name, { path: m.path, requestStream: m.requestStream, responseStream: m.responseStream, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw }]),
  );
  const Ctor = makeGenericClientConstructor(def, 'raw');
  return new Ctor(`127.0.0.1:${port}`, credentials.createInsecure());
}

export interface TargetState {
  readonly rss: number;
  readonly shutdowns: string[];
  readonly ps: { version: string; bytes: number; initialized: boolean; live: string[] };
  readonly chief: { epoch: number; workers: Array<{ clientId: string; workerId: string; state: string; epoch: number; joins: number; localStep: string }> };
  readonly unknownErrors: string[];
}

export interface Target {
  readonly ps: number;
  readonly chief: number;
  readonly process: ChildProcess;
  state(): Promise<TargetState>;
  close(): Promise<void>;
}

/** Start hostile-target.ts in its own process with this job id and chief secret. */
export function startTarget(jobId: string, chiefSecret: string): Promise<Target> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/helpers/hostile-target.ts')], {
    cwd: REPO,
    env: { ...process.env, HOSTILE_JOB: jobId, TAMP_CHIEF_SECRET: chiefSecret },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`hostile target exited with ${code} before it listened`)));
    child.once('message', (m: { type: string; ps: number; chief: number }) => {
      resolve({
        ps: m.ps,
        chief: m.chief,
        process: child,
        state: () =>
          new Promise((res) => {
            const on = (s: { type: string }) => {
              if (s.type !== 'state') return;
              child.off('message', on);
              res(s as unknown as TargetState);
            };
            child.on('message', on);
            child.send('state');
          }),
        close: async () => {
          child.disconnect();
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          await exited;
          clearTimeout(timer);
        },
      });
    });
  });
}
