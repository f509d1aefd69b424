/** Little-endian byte writer and a bounds-checked reader for the .tamp format. */
import { ModelError } from '@tamp/core';

export class ByteWriter {
  private chunks: Uint8Array[] = [];
  private length = 0;

  get size(): number {
    return this.length;
  }

  bytes(b: Uint8Array): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  private scratch(n: number, fill: (v: DataView) => void): this {
    const b = new Uint8Array(n);
    fill(new DataView(b.buffer));
    return this.bytes(b);
  }

  u8(v: number): this {
    return this.scratch(1, (d) => d.setUint8(0, v));
  }

  u16(v: number): this {
    return this.scratch(2, (d) => d.setUint16(0, v, true));
  }

  u32(v: number): this {
    return this.scratch(4, (d) => d.setUint32(0, v >>> 0, true));
  }

  u64(v: number): this {
    return this.scratch(8, (d) => d.setBigUint64(0, BigInt(v), true));
  }

  f32s(values: Float32Array): this {
    return this.bytes(new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)));
  }

  utf8(s: string): this {
    return this.bytes(new TextEncoder().encode(s));
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** Reads within a window of bytes; every read is checked against what is left. */
export class ByteReader {
  private at = 0;
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    private readonly where: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.at;
  }

  get remaining(): number {
    return this.bytes.length - this.at;
  }

  fail(why: string): ModelError {
    return new ModelError('MODEL_INVALID', `${this.where}: ${why}`);
  }

  need(n: number, what: string): void {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.remaining) {
      throw this.fail(`${what} needs ${n} bytes but only ${this.remaining} remain (truncated or corrupt)`);
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.at++);
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.at, true);
    this.at += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  u64(what: string): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.at, true);
    this.at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(`${what} of ${v} is not a plausible length`);
    return Number(v);
  }

  /** A view of the next n bytes (no copy). */
  take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }

  /** n float32 values, copied into an aligned array. */
  f32s(n: number, what: string): Float32Array {
    const b = this.take(n * 4, what);
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(b);
    return out;
  }

  utf8(n: number, what: string): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.take(n, what));
    } catch (error) {
      if (error instanceof ModelError) throw error;
      throw this.fail(`${what} is not valid UTF-8`);
    }
  }
}
