/**
 * A small PNG decoder for `tamp infer --image`: 8-bit grey, grey+alpha, RGB,
 * RGBA and palette images, not interlaced (what scanners, screenshots and
 * drawing programs write). Anything else gets a clear error.
 */
import { deflateSync, inflateSync } from 'node:zlib';
import { InvalidArgumentError, errorMessage } from '../errors.js';
import { readUserFile } from './user-paths.js';

export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly rgba: Uint8Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

export function decodePng(bytes: Uint8Array, file = 'image'): RgbaImage {
  const bad = (why: string) => new InvalidArgumentError(`${file}: ${why}`);
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw bad('not a PNG file (use PNG images for --image)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  let width = 0;
  let height = 0;
  let depth = 0;
  let colour = 0;
  let palette: Uint8Array | undefined;
  let alphaTable: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  while (at + 8 <= bytes.length) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + length > bytes.length) throw bad(`chunk ${type} runs past the end (truncated)`);
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      const h = new DataView(data.buffer, data.byteOffset, data.byteLength);
      width = h.getUint32(0);
      height = h.getUint32(4);
      depth = data[8] as number;
      colour = data[9] as number;
      if ((data[12] as number) !== 0) throw bad('interlaced PNGs are not supported; save it without interlacing');
    } else if (type === 'PLTE') palette = data;
    else if (type === 'tRNS') alphaTable = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    at += 12 + length;
  }
  const channels = CHANNELS[colour];
  if (width === 0 || height === 0 || channels === undefined) throw bad('missing or unsupported IHDR');
  if (depth !== 8) throw bad(`${depth}-bit PNGs are not supported; save it with 8 bits per channel`);
  if (width * height > 64 * 1024 * 1024) throw bad(`${width}x${height} is too large`);
  let raw: Uint8Array;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch (error) {
    throw bad(`image data is damaged (${errorMessage(error)})`);
  }
  const stride = width * channels;
  if (raw.length < (stride + 1) * height) throw bad('image data is truncated');
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] as number;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? (out[x - channels] as number) : 0;
      const b = prev[x] as number;
      const c = x >= channels ? (prev[x - channels] as number) : 0;
      let v = line[x] as number;
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw bad(`unknown row filter ${filter}`);
      out[x] = v & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const p = pixels.subarray(i * channels, (i + 1) * channels);
    let r: number;
    let g: number;
    let b: number;
    let alpha = 255;
    if (colour === 0 || colour === 4) {
      r = g = b = p[0] as number;
      if (colour === 4) alpha = p[1] as number;
    } else if (colour === 3) {
      const k = p[0] as number;
      if (palette === undefined) throw bad('palette image without a palette');
      r = palette[k * 3] ?? 0;
      g = palette[k * 3 + 1] ?? 0;
      b = palette[k * 3 + 2] ?? 0;
      alpha = alphaTable?.[k] ?? 255;
    } else {
      r = p[0] as number;
      g = p[1] as number;
      b = p[2] as number;
      if (colour === 6) alpha = p[3] as number;
    }
    rgba.set([r, g, b, alpha], i * 4);
  }
  return { width, height, rgba };
}

export function readPng(file: string): RgbaImage {
  return decodePng(readUserFile(file, { expected: 'a PNG image' }), file);
}

function crcTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}
const PNG_CRC = crcTable();

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  let c = 0xffffffff;
  for (let i = 4; i < 8 + data.length; i++) c = (PNG_CRC[(c ^ (out[i] as number)) & 0xff] as number) ^ (c >>> 8);
  view.setUint32(8 + data.length, (c ^ 0xffffffff) >>> 0);
  return out;
}

/** Encode RGBA pixels as a PNG (8-bit RGBA, no filtering). */
export function encodePng(image: RgbaImage): Uint8Array {
  const { width, height, rgba } = image;
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  header.set([8, 6, 0, 0, 0], 8);
  const raw = new Uint8Array((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) raw.set(rgba.subarray(y * width * 4, (y + 1) * width * 4), y * (width * 4 + 1) + 1);
  const parts = [Uint8Array.from(SIGNATURE), pngChunk('IHDR', header), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', new Uint8Array(0))];
  return Buffer.concat(parts);
}
