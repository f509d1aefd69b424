/**
 * The wire codecs a job can choose for gradients (push) and parameters
 * (pull), one resolver for their names, and encode/decode by name. The chief
 * fixes a job's codecs at assign; every chunk names its codec (TensorChunk's
 * `codec`), and a parameter server refuses one its job did not agree to.
 */
import { Codec } from '@tamp/proto/tamp/v1/tensor';
import { CodecError, UsageError } from '../../errors.js';
import { decodeFp16, encodeFp16 } from './fp16.js';
import { decodeInt4, encodeInt4 } from './int4.js';
import { decodeInt8, encodeInt8 } from './int8.js';
import { decodeTopk, encodeTopk } from './topk.js';

/** Gradient codecs: float32, half precision, int8 and int4 with a scale per block, the largest fraction F by magnitude. */
export const WIRE_PUSH_CODECS = Object.freeze(['fp32', 'fp16', 'int8', 'int4', 'topk:F'] as const);
/** Pull codecs that send the change since the worker's last pull (shard/pull-deltas.ts on the server, wire/pull-reference.ts on the worker). */
export type DeltaPullKind = 'int8' | 'int4';
export function isDeltaPull(kind: WireCodecKind): kind is DeltaPullKind {
  return kind === 'int8' || kind === 'int4';
}
/** Parameter codecs: top-k makes no sense for parameters (int8 and int4 pulls send the change since the last pull). */
export const WIRE_PULL_CODECS = Object.freeze(['fp32', 'fp16', 'int8', 'int4'] as const);

export type WireCodec = { readonly kind: 'fp32' } | { readonly kind: 'fp16' } | { readonly kind: 'int8' } | { readonly kind: 'int4' } | { readonly kind: 'topk'; readonly fraction: number };
export type WireCodecKind = WireCodec['kind'];

export function parseWireCodec(text: string, direction: 'push' | 'pull'): WireCodec {
  const flag = direction === 'push' ? '--wire-push' : '--wire-pull';
  const valid = (direction === 'push' ? WIRE_PUSH_CODECS : WIRE_PULL_CODECS).join(', ');
  if (text === 'fp32' || text === 'fp16' || text === 'int8' || text === 'int4') return { kind: text };
  const m = /^topk:(.+)$/.exec(text);
  if (m !== null && direction === 'push') {
    const fraction = Number(m[1]);
    if (!(fraction > 0 && fraction <= 1)) throw new UsageError(`${flag} ${text}: the fraction F in topk:F is a number in (0, 1], e.g. topk:0.01 sends the largest 1%`);
    return { kind: 'topk', fraction };
  }
  throw new UsageError(`${flag} "${text}" is not a codec: use one of ${valid}`);
}

export function formatWireCodec(c: WireCodec): string {
  return c.kind === 'topk' ? `topk:${c.fraction}` : c.kind;
}

const TO_PROTO: Record<WireCodecKind, Codec> = { fp32: Codec.CODEC_NONE, fp16: Codec.CODEC_FP16, int8: Codec.CODEC_INT8, int4: Codec.CODEC_INT4, topk: Codec.CODEC_TOPK };

export function protoCodec(kind: WireCodecKind): Codec {
  return TO_PROTO[kind];
}

export function codecKindOf(codec: Codec, name: string): WireCodecKind {
  for (const [kind, c] of Object.entries(TO_PROTO)) if (c === codec) return kind as WireCodecKind;
  throw new CodecError('CODEC_UNSUPPORTED', `tensor "${name}" uses codec ${String(codec)}, which this Tamp does not know; run the same Tamp version in every role`, name);
}

/** Encode float32 data; fp32 returns the data's own bytes (no copy). */
export function encodeWire(c: WireCodec, data: Float32Array): Uint8Array {
  switch (c.kind) {
    case 'fp32':
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    case 'fp16':
      return encodeFp16(data);
    case 'int8':
      return encodeInt8(data);
    case 'int4':
      return encodeInt4(data);
    case 'topk':
      return encodeTopk(data, c.fraction);
  }
}

/** Decode `n` elements of a compressed payload, refusing anything malformed. */
export function decodeWire(kind: Exclude<WireCodecKind, 'fp32'>, bytes: Uint8Array, n: number, name: string): Float32Array {
  switch (kind) {
    case 'fp16':
      return decodeFp16(bytes, n, name);
    case 'int8':
      return decodeInt8(bytes, n, name);
    case 'int4':
      return decodeInt4(bytes, n, name);
    case 'topk':
      return decodeTopk(bytes, n, name);
  }
}
