/** zlib's native CRC-32 (Node 20.15+): same results as the portable one, about ten times faster. */
import * as zlib from 'node:zlib';
import { setCrc32Implementation } from '../codec/crc32.js';

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
if (native !== undefined) setCrc32Implementation((bytes, crc) => native(bytes, crc));
export const NATIVE_CRC32 = typeof (zlib as { crc32?: unknown }).crc32 === 'function';
