/**
 * CRC-32 (IEEE 802.3; the checksum of zlib, gzip and PNG) over tensor bytes
 * and files. This portable version (slicing-by-8, about 0.6 GB/s) runs in
 * browsers; @tamp/core/node plugs in zlib's native one (several GB/s), so
 * checksumming a gradient costs far less than sending it.
 */

const POLY = 0xedb88320;
const TABLES: Uint32Array[] = makeTables();

function makeTables(): Uint32Array[] {
  const tables: Uint32Array[] = [];
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? POLY ^ (c >>> 1) : c >>> 1;
    t0[n] = c >>> 0;
  }
  tables.push(t0);
  for (let t = 1; t < 8; t++) {
    const prev = tables[t - 1] as Uint32Array;
    const next = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      const p = prev[n] as number;
      next[n] = ((p >>> 8) ^ (t0[p & 0xff] as number)) >>> 0;
    }
    tables.push(next);
  }
  return tables;
}

/** The portable implementation (always available, used as the reference in tests). */
export function crc32Portable(bytes: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [
    Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array,
  ];
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  const end8 = n - (n % 8);
  while (i < end8) {
    const a = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    c =
      t7[a & 0xff]! ^
      t6[(a >>> 8) & 0xff]! ^
      t5[(a >>> 16) & 0xff]! ^
      t4[a >>> 24]! ^
      t3[bytes[i + 4]!]! ^
      t2[bytes[i + 5]!]! ^
      t1[bytes[i + 6]!]! ^
      t0[bytes[i + 7]!]!;
    i += 8;
  }
  while (i < n) {
    c = t0[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
    i++;
  }
  return ~c >>> 0;
}

let implementation: (bytes: Uint8Array, crc: number) => number = crc32Portable;

/** Continue a CRC-32 over `bytes`; start with `crc = 0`. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  return implementation(bytes, crc);
}

/** Use a faster implementation with the same results (zlib.crc32 in Node). */
export function setCrc32Implementation(fn: (bytes: Uint8Array, crc: number) => number): void {
  implementation = fn;
}
