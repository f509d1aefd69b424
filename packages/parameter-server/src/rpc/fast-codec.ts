/**
 * Serializers for the messages that carry tensor payloads (PushRequest,
 * PullResponse, AssignRequest). ts-proto's writer grows its buffer by
 * doubling and then copies it twice more; for megabyte payloads that
 * garbage dominated a push. These encode everything but the payload with
 * ts-proto, then lay the message out in one buffer of the exact size and copy
 * the payload once. The bytes are valid protobuf (fields may come in any
 * order), decoded by the generated code.
 */
import {
  AssignRequest,
  ParameterServerService,
  PullResponse,
  PushRequest,
} from '@tamp/proto/tamp/v1/parameter_server';
import { type TensorChunk, TensorChunk as TensorChunkCodec } from '@tamp/proto/tamp/v1/tensor';
import { makeGenericClientConstructor } from '@grpc/grpc-js';
import { ZERO_COPY_MIN_BYTES } from '@tamp/core';

const LEN = 2; // wire type of length-delimited fields
const PAYLOAD_FIELD = 6; // TensorChunk.payload
const PADDING_FIELD = 11; // TensorChunk.padding
/**
 * grpc-js hands deserializers a view that starts 5 bytes (the gRPC frame
 * header) into a freshly allocated buffer; a payload at message offset p
 * then sits at buffer offset 5 + p.
 */
const RECEIVER_OFFSET = 5;

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

interface Layout {
  readonly padding: number; // padding field bytes in total (0: none)
  readonly chunkLength: number;
  readonly total: number;
  readonly payloadAt: number;
}

function layout(prefixLength: number, chunkField: number, headLength: number, payloadLength: number, padding: number): Layout {
  const payloadHeader = payloadLength === 0 ? 0 : varintLength((PAYLOAD_FIELD << 3) | LEN) + varintLength(payloadLength);
  const chunkLength = headLength + padding + payloadHeader + payloadLength;
  const chunkHeader = varintLength((chunkField << 3) | LEN) + varintLength(chunkLength);
  const payloadAt = prefixLength + chunkHeader + headLength + padding + payloadHeader;
  return { padding, chunkLength, total: prefixLength + chunkHeader + chunkLength, payloadAt };
}

/** Encode `message` whose field `chunkField` holds a TensorChunk, copying the payload once. */
function encodeWithChunk(prefix: Uint8Array, chunkField: number, chunk: TensorChunk | undefined): Buffer {
  if (chunk === undefined) return Buffer.from(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const payload = chunk.payload;
  const head = TensorChunkCodec.encode({ ...chunk, payload: new Uint8Array(0), padding: new Uint8Array(0) }).finish();
  // A padding field of 2 + k bytes (tag, length, k bytes) moves the payload to
  // a 4-byte boundary at the receiver, so large tensors are read in place.
  let plan = layout(prefix.length, chunkField, head.length, payload.length, 0);
  if (payload.length >= ZERO_COPY_MIN_BYTES) {
    for (const padding of [0, 2, 3, 4, 5]) {
      const candidate = layout(prefix.length, chunkField, head.length, payload.length, padding);
      if ((RECEIVER_OFFSET + candidate.payloadAt) % 4 === 0) {
        plan = candidate;
        break;
      }
    }
  }
  const out = Buffer.allocUnsafe(plan.total);
  out.set(prefix, 0);
  let at = prefix.length;
  at = writeVarint(out, at, (chunkField << 3) | LEN);
  at = writeVarint(out, at, plan.chunkLength);
  out.set(head, at);
  at += head.length;
  if (plan.padding > 0) {
    at = writeVarint(out, at, (PADDING_FIELD << 3) | LEN);
    at = writeVarint(out, at, plan.padding - 2);
    out.fill(0, at, at + plan.padding - 2);
    at += plan.padding - 2;
  }
  if (payload.length > 0) {
    at = writeVarint(out, at, (PAYLOAD_FIELD << 3) | LEN);
    at = writeVarint(out, at, payload.length);
    if (at !== plan.payloadAt) throw new Error(`fast-codec: payload at ${at}, planned ${plan.payloadAt}`);
    out.set(payload, at);
    at += payload.length;
  }
  if (at !== plan.total) throw new Error(`fast-codec: wrote ${at} of ${plan.total} bytes`);
  return out;
}

export function encodePushRequest(message: PushRequest): Buffer {
  return encodeWithChunk(PushRequest.encode({ ...message, chunk: undefined }).finish(), 7, message.chunk);
}

export function encodePullResponse(message: PullResponse): Buffer {
  return encodeWithChunk(PullResponse.encode({ ...message, chunk: undefined }).finish(), 2, message.chunk);
}

export function encodeAssignRequest(message: AssignRequest): Buffer {
  return encodeWithChunk(AssignRequest.encode({ ...message, chunk: undefined }).finish(), 6, message.chunk);
}

/**
 * Pull responses may be handed over already encoded (a Buffer): the server
 * encodes a whole snapshot synchronously, so encoding is the snapshot's only copy.
 */
function serializePullResponse(message: PullResponse | Buffer): Buffer {
  return Buffer.isBuffer(message) ? message : encodePullResponse(message);
}

/** The generated service definition with the fast serializers: used by servers and clients alike. */
export const FastParameterServerService = {
  ...ParameterServerService,
  pull: { ...ParameterServerService.pull, responseSerialize: serializePullResponse },
  push: { ...ParameterServerService.push, requestSerialize: encodePushRequest },
  assign: { ...ParameterServerService.assign, requestSerialize: encodeAssignRequest },
} as const;

export const FastParameterServerClient = makeGenericClientConstructor(FastParameterServerService, 'tamp.v1.ParameterServer');
