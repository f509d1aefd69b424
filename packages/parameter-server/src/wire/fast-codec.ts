/**
 * Serializers for the messages that carry tensor payloads (PushRequest,
 * PullResponse, AssignRequest). ts-proto's writer grows its buffer by
 * doubling and then copies it twice more; for megabyte payloads that
 * garbage dominated a push. These encode everything but the payloads with
 * ts-proto, then lay the message out in one buffer of the exact size and copy
 * each payload once. A message carries its chunks in `chunk` and then
 * `more_chunks` (several small tensors share a message). The bytes are valid
 * protobuf, decoded by the generated code.
 */
import {
  AssignRequest,
  type ParameterServerClient,
  ParameterServerService,
  PullResponse,
  PushRequest,
} from '@tamp/proto/tamp/v1/parameter_server';
import { type TensorChunk, TensorChunk as TensorChunkCodec } from '@tamp/proto/tamp/v1/tensor';
import { ZERO_COPY_MIN_BYTES } from '@tamp/core/base';
import { clientConstructor } from '@tamp/rpc';

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

/** Where one chunk goes in a message: its field, encoded head (all but payload and padding), padding bytes, payload. */
interface Placed {
  readonly field: number;
  readonly head: Uint8Array;
  readonly padding: number; // padding field bytes in total (0: none)
  readonly payload: Uint8Array;
  readonly chunkLength: number;
  readonly payloadAt: number; // offset of the payload in the message
}

function payloadHeaderLength(payloadLength: number): number {
  return payloadLength === 0 ? 0 : varintLength((PAYLOAD_FIELD << 3) | LEN) + varintLength(payloadLength);
}

/** Lay out one chunk starting at message offset `at`, padded so a large payload lands on a 4-byte boundary at the receiver. */
function place(field: number, chunk: TensorChunk, at: number): Placed {
  const payload = chunk.payload;
  const head = TensorChunkCodec.encode({ ...chunk, payload: new Uint8Array(0), padding: new Uint8Array(0) }).finish();
  const plan = (padding: number) => {
    const chunkLength = head.length + padding + payloadHeaderLength(payload.length) + payload.length;
    const payloadAt = at + varintLength((field << 3) | LEN) + varintLength(chunkLength) + head.length + padding + payloadHeaderLength(payload.length);
    return { field, head, padding, payload, chunkLength, payloadAt };
  };
  // A padding field of 2 + k bytes (tag, length, k bytes) moves the payload to
  // a 4-byte boundary at the receiver, so large tensors are read in place.
  if (payload.length >= ZERO_COPY_MIN_BYTES) {
    for (const padding of [0, 2, 3, 4, 5]) {
      const candidate = plan(padding);
      if ((RECEIVER_OFFSET + candidate.payloadAt) % 4 === 0) return candidate;
    }
  }
  return plan(0);
}

function placedLength(p: Placed): number {
  return varintLength((p.field << 3) | LEN) + varintLength(p.chunkLength) + p.chunkLength;
}

/**
 * Encode a message whose field `chunkField` holds the first chunk and
 * `moreField` the rest, copying each payload once into one buffer of the
 * exact size.
 */
function encodeWithChunks(prefix: Uint8Array, chunkField: number, moreField: number, chunks: readonly TensorChunk[]): Buffer {
  if (chunks.length === 0) return Buffer.from(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const placed: Placed[] = [];
  let total = prefix.length;
  chunks.forEach((chunk, i) => {
    const p = place(i === 0 ? chunkField : moreField, chunk, total);
    placed.push(p);
    total += placedLength(p);
  });
  const out = Buffer.allocUnsafe(total);
  out.set(prefix, 0);
  let at = prefix.length;
  for (const p of placed) {
    at = writeVarint(out, at, (p.field << 3) | LEN);
    at = writeVarint(out, at, p.chunkLength);
    out.set(p.head, at);
    at += p.head.length;
    if (p.padding > 0) {
      at = writeVarint(out, at, (PADDING_FIELD << 3) | LEN);
      at = writeVarint(out, at, p.padding - 2);
      out.fill(0, at, at + p.padding - 2);
      at += p.padding - 2;
    }
    if (p.payload.length > 0) {
      at = writeVarint(out, at, (PAYLOAD_FIELD << 3) | LEN);
      at = writeVarint(out, at, p.payload.length);
      // The layout above was planned with the same lengths: a mismatch is a bug in this file.
      if (at !== p.payloadAt) throw new Error(`fast-codec: payload at ${at}, planned ${p.payloadAt}`);
      out.set(p.payload, at);
      at += p.payload.length;
    }
  }
  // As above: the exact size was computed from the same placements.
  if (at !== total) throw new Error(`fast-codec: wrote ${at} of ${total} bytes`);
  return out;
}

/** The chunks to encode; receivers read `chunk` first, so `more_chunks` alone is a sender's bug. */
function chunksOf(message: { chunk?: TensorChunk | undefined; moreChunks: readonly TensorChunk[] }): TensorChunk[] {
  // Senders in this repository fill `chunk` first (encodeTensorMessages); only a bug here breaks that.
  if (message.chunk === undefined && message.moreChunks.length > 0) throw new Error('fast-codec: more_chunks without a first chunk');
  return messageChunks(message);
}

export function encodePushRequest(message: PushRequest): Buffer {
  return encodeWithChunks(PushRequest.encode({ ...message, chunk: undefined, moreChunks: [] }).finish(), 7, 8, chunksOf(message));
}

export function encodePullResponse(message: PullResponse): Buffer {
  return encodeWithChunks(PullResponse.encode({ ...message, chunk: undefined, moreChunks: [] }).finish(), 2, 3, chunksOf(message));
}

export function encodeAssignRequest(message: AssignRequest): Buffer {
  return encodeWithChunks(AssignRequest.encode({ ...message, chunk: undefined, moreChunks: [] }).finish(), 6, 12, chunksOf(message));
}

/** The chunks a decoded message carries, in order (`chunk`, then `more_chunks`). */
export function messageChunks(message: { chunk?: TensorChunk | undefined; moreChunks?: readonly TensorChunk[] }): TensorChunk[] {
  return message.chunk === undefined ? [...(message.moreChunks ?? [])] : [message.chunk, ...(message.moreChunks ?? [])];
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

/** The generated client's interface over the fast serializers. */
export const FastParameterServerClient = clientConstructor<ParameterServerClient>(FastParameterServerService, 'tamp.v1.ParameterServer');
