import { describe, expect, it } from 'vitest';
import { AssignRequest, PullResponse, PushRequest } from '@tamp/proto/tamp/v1/parameter_server';
import { PROTOCOL_VERSION, encodeTensor } from '@tamp/core';
import type { TensorChunk } from '@tamp/proto/tamp/v1/tensor';
import { encodeAssignRequest, encodePullResponse, encodePushRequest, messageChunks } from './fast-codec.js';

const data = Float32Array.from({ length: 40_000 }, (_, i) => Math.sin(i));
const [chunk] = encodeTensor({ name: 'fc1/kernel', shape: [200, 200], dtype: 'float32', data, sliceStart: 0 });
const [second] = encodeTensor({ name: 'fc2/kernel', shape: [100, 200], dtype: 'float32', data: data.subarray(0, 20_000), sliceStart: 0 });
const [bias] = encodeTensor({ name: 'fc1/bias', shape: [3], dtype: 'float32', data: Float32Array.from([1, 2, 3]), sliceStart: 0 });
const empty = encodeTensor({ name: 'empty', shape: [0], dtype: 'float32', data: new Float32Array(0), sliceStart: 0 })[0];
if (chunk === undefined || second === undefined || bias === undefined || empty === undefined) throw new Error('no chunks');

type WithChunks = { chunk?: TensorChunk | undefined; moreChunks: TensorChunk[] };

/** Compare decoded messages: payload bytes exactly, padding ignored (receivers ignore it). */
function same(a: WithChunks, b: WithChunks): void {
  const strip = (c: TensorChunk) => ({ ...c, payload: undefined, padding: undefined });
  const shape = (m: WithChunks) => ({ ...m, chunk: m.chunk === undefined ? undefined : strip(m.chunk), moreChunks: m.moreChunks.map(strip) });
  expect(shape(a)).toEqual(shape(b));
  const pa = messageChunks(a);
  const pb = messageChunks(b);
  expect(pa.length).toBe(pb.length);
  pa.forEach((c, i) => expect(Buffer.from(c.payload).equals(Buffer.from(pb[i]?.payload ?? []))).toBe(true));
}

/** What grpc-js hands the deserializer: a view 5 bytes into a fresh buffer. */
function received(bytes: Buffer): Buffer {
  const framed = Buffer.alloc(bytes.length + 5);
  bytes.copy(framed, 5);
  return framed.subarray(5);
}

const layouts: Array<[TensorChunk | undefined, TensorChunk[]]> = [
  [chunk, []],
  [empty, []],
  [undefined, []],
  [bias, [chunk, empty, second, bias]],
  [chunk, [second]],
];

describe('fast serializers', () => {
  it('produce what the generated decoders read back, one chunk or several per message', () => {
    for (const [c, more] of layouts) {
      const push: PushRequest = { header: { jobId: 'j', protocolVersion: PROTOCOL_VERSION }, workerId: 'worker-1', step: 2n ** 62n, basedOnVersion: 5n, batchSize: 64, tensorCount: 3, momentumCorrected: true, adamCorrected: true, chunk: c, moreChunks: more, restoreGeneration: 7n };
      same(PushRequest.decode(encodePushRequest(push)), push);
      const pull: PullResponse = { version: 12345678901234n, pullSeq: 9n, chunk: c, moreChunks: more };
      same(PullResponse.decode(encodePullResponse(pull)), pull);
      const assign = { header: undefined, shardIndex: 1, optimizer: undefined, version: 3n, tensorCount: 2, mode: 'sync', syncReplicas: 2, staleness: 0, workerIds: ['a', 'b'], workerStep: 4n, wirePush: 'topk:0.01', wirePull: 'int8', checkpointRoot: '/runs/j/checkpoints', momentumCorrection: true, adamCorrection: true, restoreGeneration: 2n, chunk: c, moreChunks: more } satisfies AssignRequest;
      same(AssignRequest.decode(encodeAssignRequest(assign)), assign);
    }
  });

  it('refuse more_chunks without a first chunk (the receiver reads `chunk` first)', () => {
    expect(() => encodePullResponse({ version: 1n, pullSeq: 0n, chunk: undefined, moreChunks: [bias] })).toThrow(/more_chunks without a first chunk/);
  });

  it('place every large payload on a 4-byte boundary of the receiving buffer (gRPC frame header included)', () => {
    for (const workerId of ['w', 'worker-12', 'a-much-longer-worker-name']) {
      const single = PushRequest.decode(received(encodePushRequest({ header: undefined, workerId, step: 1n, basedOnVersion: 0n, batchSize: 1, tensorCount: 1, momentumCorrected: false, adamCorrected: false, chunk, moreChunks: [], restoreGeneration: 0n })));
      expect((single.chunk?.payload.byteOffset ?? 1) % 4).toBe(0);
      // Several per message: small ones in between must not throw the large ones off.
      const several = PullResponse.decode(received(encodePullResponse({ version: 7n, pullSeq: 0n, chunk: bias, moreChunks: [chunk, bias, second, empty] })));
      const large = messageChunks(several).filter((c) => c.payload.length >= 64 * 1024);
      expect(large.map((c) => c.name)).toEqual(['fc1/kernel', 'fc2/kernel']);
      for (const c of large) expect(c.payload.byteOffset % 4).toBe(0);
    }
  });
});
