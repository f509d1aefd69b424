/**
 * The seeded fuzzer of test/hostile-client.test.ts: random messages built
 * from the `.proto` descriptors (every field of every request type, with
 * extreme numbers, long and odd strings, random bytes, random chunks), and
 * malformed bytes, to every method of both services, under no credentials,
 * the chief's secret or a worker's token; a bounded number of calls, a few
 * at a time, each with a short deadline.
 */
import { loadSync } from '@grpc/proto-loader';
import { PROTOCOL_VERSION, Random } from '@tamp/core';
import { CHIEF_SECRET_KEY, WORKER_KEY_KEY, WORKER_TOKEN_KEY } from '@tamp/rpc';
import { join } from 'node:path';
import { CoordinatorProto, METHODS, type Outcome, ParameterServerProto, clientStream, metadata, protoClient, rawClient, serverStream, unary } from './hostile.js';
import { REPO } from './tamp.js';

interface Field {
  readonly name: string;
  readonly label: string;
  readonly type: string;
  readonly typeName: string;
}
const descriptors = loadSync(['tamp/v1/parameter_server.proto', 'tamp/v1/coordinator.proto'], { includeDirs: [join(REPO, 'proto')] }) as unknown as Record<
  string,
  { type?: { field?: Field[] } } & Record<string, { requestType?: { type: { name: string } } }>
>;
const fieldsOf = (typeName: string): Field[] => descriptors[`tamp.v1.${typeName}`]?.type?.field ?? [];

export interface FuzzOutcome extends Outcome {
  readonly method: string;
  /** The request named another job (or none): it must be refused. */
  readonly foreignJob: boolean;
}

export interface FuzzOptions {
  readonly seed: number;
  readonly calls: number;
  readonly psPort: number;
  readonly chiefPort: number;
  readonly jobId: string;
  readonly chiefSecret: string;
  readonly workerToken: string;
}

const NUMBERS = ['0', '1', '2', '3', '40', '4294967295', '4294967296', '9007199254740993', '18446744073709551615'];
const STRINGS = ['', 'worker-0', 'worker-1', 'chief', '../../../etc', '/tmp/x', 'step-000000001', 'a/b', '\u0000', 'sgd', 'adam', 'async', 'sync', 'ssp', 'w', 'b'];

export async function fuzz(o: FuzzOptions): Promise<FuzzOutcome[]> {
  const r = new Random(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[r.int(xs.length)] as T;
  const chance = (p: number) => r.next() < p;
  /** n bytes from one draw (a small LCG fills them: fast for the large ones). */
  const bytes = (n: number) => {
    let x = r.int(2 ** 31) | 1;
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1103515245) + 12345) | 0;
      out[i] = x >>> 24;
    }
    return out;
  };
  const text = () => (chance(0.7) ? pick(STRINGS) : chance(0.5) ? 'x'.repeat(r.int(5000)) : bytes(r.int(40)).toString('latin1'));

  const value = (f: Field, depth: number): unknown => {
    switch (f.type) {
      case 'TYPE_STRING':
        return text();
      case 'TYPE_BOOL':
        return chance(0.5);
      case 'TYPE_DOUBLE':
        return pick([0, -1, 0.5, 1e308, -1e308, NaN, Infinity, -Infinity, 5e-324]);
      case 'TYPE_INT32':
        return pick([0, -1, 1, -2147483648, 2147483647, 3]);
      case 'TYPE_UINT32':
      case 'TYPE_FIXED32':
        return pick([0, 1, 2, 3, 36, 65535, 4294967295]);
      case 'TYPE_UINT64':
        return pick(NUMBERS);
      case 'TYPE_ENUM':
        return r.int(6);
      case 'TYPE_BYTES':
        return bytes(chance(0.9) || depth > 1 ? r.int(64) : r.int(1_100_000));
      case 'TYPE_MESSAGE':
        return depth > 3 ? undefined : message(f.typeName, depth + 1);
      default:
        return undefined;
    }
  };
  const message = (typeName: string, depth = 0): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const f of fieldsOf(typeName)) {
      if (chance(0.25)) continue;
      if (f.label === 'LABEL_REPEATED') out[f.name] = Array.from({ length: chance(0.9) || depth > 0 ? r.int(4) : r.int(2000) }, () => value(f, depth + 1));
      else out[f.name] = value(f, depth);
    }
    return out;
  };

  const clients = { ParameterServer: protoClient(ParameterServerProto, o.psPort), Coordinator: protoClient(CoordinatorProto, o.chiefPort) };
  const raws = { ParameterServer: rawClient(o.psPort, METHODS.ParameterServer), Coordinator: rawClient(o.chiefPort, METHODS.Coordinator) };
  const all = [...METHODS.ParameterServer.map((m) => ({ service: 'ParameterServer' as const, ...m })), ...METHODS.Coordinator.map((m) => ({ service: 'Coordinator' as const, ...m }))];
  // proto-loader's method definitions carry their request type's descriptor beside grpc-js's fields.
  const requestTypeOf = (service: 'ParameterServer' | 'Coordinator', name: string) =>
    ((service === 'ParameterServer' ? ParameterServerProto : CoordinatorProto).service[name] as unknown as { requestType: { type: { name: string } } }).requestType;

  /** One call, every random choice drawn now (in order), so a seed always makes the same calls. */
  const make = (): (() => Promise<FuzzOutcome>) => {
    const m = pick(all);
    const md = metadata(pick([{}, { [CHIEF_SECRET_KEY]: o.chiefSecret }, { [WORKER_TOKEN_KEY]: o.workerToken }, { [WORKER_KEY_KEY]: 'fuzz' }, { [CHIEF_SECRET_KEY]: bytes(r.int(300)).toString('base64') }, { [WORKER_TOKEN_KEY]: `${r.int(10)}.${bytes(32).toString('base64url')}` }]));
    const ms = 3_000;
    if (chance(0.2)) {
      // Malformed: bytes that are not (or not only) the request type.
      const client = raws[m.service];
      const garbage = () => (chance(0.5) ? bytes(r.int(200)) : Buffer.concat([Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]), bytes(r.int(20))]));
      const messages = Array.from({ length: 1 + r.int(3) }, garbage);
      return async () => {
        const outcome = m.requestStream
          ? await clientStream(client, m.name, messages, md, { ms })
          : m.responseStream
            ? await serverStream(client, m.name, messages[0], md, ms)
            : await unary(client, m.name, messages[0], md, ms);
        return { ...outcome, method: m.name, foreignJob: false };
      };
    }
    const typeName = requestTypeOf(m.service, m.name).type.name;
    const first = message(typeName);
    const foreignJob = !chance(0.6);
    const jobId = foreignJob && chance(0.5) ? text() : o.jobId;
    first.header = foreignJob ? (jobId === o.jobId ? undefined : { jobId, protocolVersion: PROTOCOL_VERSION }) : { jobId: o.jobId, protocolVersion: chance(0.9) ? PROTOCOL_VERSION : r.int(100) };
    const rest = m.requestStream ? Array.from({ length: r.int(4) }, () => message(typeName)) : [];
    const cancel = chance(0.1);
    const client = clients[m.service];
    return async () => {
      let outcome: Outcome;
      if (m.requestStream) outcome = await clientStream(client, m.name, [first, ...rest], md, { ms, cancel });
      else if (m.responseStream) outcome = await serverStream(client, m.name, first, md, ms);
      else outcome = await unary(client, m.name, first, md, ms);
      return { ...outcome, method: m.name, foreignJob };
    };
  };

  const calls = Array.from({ length: o.calls }, make);
  const outcomes: FuzzOutcome[] = [];
  const CONCURRENCY = 8;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < calls.length) {
        const call = calls[next++] as () => Promise<FuzzOutcome>;
        outcomes.push(await call());
      }
    }),
  );
  for (const c of [...Object.values(clients), ...Object.values(raws)]) c.close();
  return outcomes;
}
