import { describe, expect, it } from 'vitest';
import { AssignRequest, PullResponse, PushRequest } from '@tamp/proto/tamp/v1/parameter_server';
import { PROTOCOL_VERSION, encodeTensor } from '@tamp/core';
import type { TensorChunk } from '@tamp/proto/tamp/v1/tensor';
import { encodeAssignRequest, encodePullResponse, encodePushRequest } from './fast-codec.js';

const data = Float32Array.from({ length: 40_000 }, (_, i) => Math.sin(i));
const [chunk] = encodeTensor({ name: 'fc1/kernel', shape: [200, 200], dtype: 'float32', data, sliceStart: 0 });
const empty = encodeTensor({ name: 'empty', shape: [0], dtype: 'float32', data: new Float32Array(0), sliceStart: 0 })[0];

/** Compare decoded messages: payload bytes exactly, padding ignored (receivers ignore it). */
function same(a: { chunk?: TensorChunk | undefined }, b: { chunk?: TensorChunk | undefined }): void {
  const strip = (m: { chunk?: TensorChunk | undefined }) => ({ ...m, chunk: m.chunk === undefined ? undefined : { ...m.chunk, payload: undefined, padding: undefined } });
  expect(strip(a)).toEqual(strip(b));
  expect(Buffer.from(a.chunk?.payload ?? []).equals(Buffer.from(b.chunk?.payload ?? []))).toBe(true);
}

describe('fast serializers', () => {
  it('produce what the generated decoders read back', () => {
    for (const c of [chunk, empty, undefined]) {
      const push: PushRequest = { header: { jobId: 'j', protocolVersion: PROTOCOL_VERSION }, workerId: 'worker-1', step: 2n ** 62n, basedOnVersion: 5n, batchSize: 64, tensorCount: 3, chunk: c };
      same(PushRequest.decode(encodePushRequest(push)), push);
      const pull: PullResponse = { version: 12345678901234n, chunk: c };
      same(PullResponse.decode(encodePullResponse(pull)), pull);
      const assign = { header: undefined, shardIndex: 1, optimizer: undefined, version: 3n, tensorCount: 2, mode: 'sync', syncReplicas: 2, staleness: 0, workerIds: ['a', 'b'], workerStep: 4n, chunk: c } satisfies AssignRequest;
      same(AssignRequest.decode(encodeAssignRequest(assign)), assign);
    }
  });

  it('place large payloads on a 4-byte boundary of the receiving buffer (gRPC frame header included)', () => {
    for (const workerId of ['w', 'worker-12', 'a-much-longer-worker-name']) {
      const bytes = encodePushRequest({ header: undefined, workerId, step: 1n, basedOnVersion: 0n, batchSize: 1, tensorCount: 1, chunk });
      // What grpc-js hands the deserializer: a view 5 bytes into a fresh buffer.
      const framed = Buffer.alloc(bytes.length + 5);
      bytes.copy(framed, 5);
      const decoded = PushRequest.decode(framed.subarray(5));
      expect((decoded.chunk?.payload.byteOffset ?? 1) % 4).toBe(0);
    }
  });
});
