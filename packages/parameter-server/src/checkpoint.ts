/**
 * One shard's part of a checkpoint: its variables, optimizer slots and
 * optimizer state at one version, in a single file written atomically
 * (temporary file, fsync, rename) and closed by a CRC-32.
 *
 *   bytes 0-7   "TAMPSHRD"
 *   u32 LE      format version (1)
 *   u32 LE      header length H
 *   H bytes     header, UTF-8 JSON (ShardCheckpointHeader)
 *   ...         for each part in header order: value, then each slot, f32 LE
 *   u32 LE      CRC-32 of every byte before it
 *
 * The reader checks sizes against the file before allocating, so a damaged
 * or hostile file is refused with a ModelError, never a crash.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ConsistencyMode, ModelError, type OptimizerSettings, crc32, errorMessage, partKey } from '@tamp/core/base';
import { atomicWriteFile } from '@tamp/core/node-base';
import type { Shard } from './shard.js';

const MAGIC = 'TAMPSHRD';
export const SHARD_CHECKPOINT_FORMAT = 1;

export interface ShardCheckpointHeader {
  readonly shardIndex: number;
  readonly version: string;
  readonly optimizer: OptimizerSettings;
  readonly optimizerState: Record<string, number>;
  readonly mode: ConsistencyMode;
  readonly parts: ReadonlyArray<{ name: string; shape: number[]; sliceStart: number; sliceLength: number; slots: string[] }>;
}

export interface ShardCheckpoint {
  readonly header: ShardCheckpointHeader;
  readonly values: ReadonlyMap<string, Float32Array>; // by part key name@start
  readonly slots: ReadonlyMap<string, Float32Array>; // by "name:slot@start"
}

export function shardFileName(index: number): string {
  return `shard-${index}.bin`;
}

/**
 * The shard's state copied into one buffer laid out as its checkpoint file
 * (the CRC-32 trailer left for sealShardCheckpoint): called while no update
 * can interleave, so the copy is the state at `version`.
 */
export function copyShardCheckpoint(shard: Shard): { bytes: Buffer; version: bigint } {
  const config = shard.shardConfig;
  if (config === undefined) throw new ModelError('MODEL_INVALID', `shard ${shard.index} has no state to save yet`);
  const parts = shard.partList;
  const header: ShardCheckpointHeader = {
    shardIndex: shard.index,
    version: shard.version.toString(),
    optimizer: config.optimizer,
    optimizerState: shard.optimizerState(),
    mode: config.mode,
    parts: parts.map((p) => ({ name: p.name, shape: [...p.shape], sliceStart: p.sliceStart, sliceLength: p.sliceLength, slots: [...(shard.slotNames ?? [])] })),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const dataBytes = parts.reduce((n, p) => n + p.sliceLength * 4 * (1 + p.slots.length), 0);
  const total = 16 + headerBytes.length + dataBytes + 4;
  // allocUnsafe: every byte is written below (header, data, then the trailer when sealed).
  const out = Buffer.allocUnsafe(total);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(SHARD_CHECKPOINT_FORMAT, 8);
  out.writeUInt32LE(headerBytes.length, 12);
  headerBytes.copy(out, 16);
  let at = 16 + headerBytes.length;
  for (const p of parts) {
    for (const arr of [p.value, ...p.slots]) {
      out.set(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength), at);
      at += arr.byteLength;
    }
  }
  return { bytes: out, version: shard.version };
}

/** Fill a copied checkpoint's CRC-32 trailer; returns the CRC-32 of the whole file, trailer included (what the manifest records). */
export function sealShardCheckpoint(bytes: Buffer): number {
  const at = bytes.length - 4;
  bytes.writeUInt32LE(crc32(bytes.subarray(0, at)), at);
  return crc32(bytes);
}

/** Write the shard's state into `directory` now; returns the file, its size and the CRC-32 of the whole file. */
export function writeShardCheckpoint(shard: Shard, directory: string): { file: string; bytes: number; crc32: number } {
  const { bytes } = copyShardCheckpoint(shard);
  const checksum = sealShardCheckpoint(bytes);
  const file = join(directory, shardFileName(shard.index));
  atomicWriteFile(file, bytes);
  return { file, bytes: bytes.length, crc32: checksum };
}

function corrupt(file: string, why: string): ModelError {
  return new ModelError('MODEL_INVALID', `checkpoint part ${file} is damaged: ${why}`);
}

/** A header part as the writer makes it (the checksum only proves the bytes are the ones written). */
function wellFormedPart(p: unknown): boolean {
  const q = p as Partial<ShardCheckpointHeader['parts'][number]> | null;
  const count = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  return (
    typeof q === 'object' &&
    q !== null &&
    typeof q.name === 'string' &&
    Array.isArray(q.shape) &&
    count(q.sliceStart) &&
    count(q.sliceLength) &&
    Array.isArray(q.slots) &&
    q.slots.every((s) => typeof s === 'string')
  );
}

/** Read and verify a shard checkpoint file. */
export function readShardCheckpoint(file: string): ShardCheckpoint {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new ModelError('MODEL_NOT_FOUND', `checkpoint part ${file} cannot be read (${errorMessage(error)})`, { cause: error });
  }
  if (bytes.length < 20) throw corrupt(file, `${bytes.length} bytes is shorter than the smallest checkpoint`);
  if (bytes.toString('latin1', 0, 8) !== MAGIC) throw corrupt(file, 'not a Tamp shard checkpoint (bad magic)');
  const format = bytes.readUInt32LE(8);
  if (format > SHARD_CHECKPOINT_FORMAT) throw new ModelError('VERSION_UNSUPPORTED', `checkpoint part ${file} has format ${format}; this Tamp reads up to ${SHARD_CHECKPOINT_FORMAT}: upgrade Tamp`);
  const headerLength = bytes.readUInt32LE(12);
  if (16 + headerLength + 4 > bytes.length) throw corrupt(file, `header of ${headerLength} bytes runs past the end (truncated?)`);
  const stored = bytes.readUInt32LE(bytes.length - 4);
  const actual = crc32(bytes.subarray(0, bytes.length - 4));
  if (stored !== actual) throw corrupt(file, `checksum mismatch (CRC-32 ${actual.toString(16)}, stored ${stored.toString(16)}): truncated or altered`);
  let header: ShardCheckpointHeader;
  try {
    header = JSON.parse(bytes.toString('utf8', 16, 16 + headerLength)) as ShardCheckpointHeader;
  } catch (error) {
    throw corrupt(file, `header is not JSON (${errorMessage(error)})`);
  }
  if (!Array.isArray(header.parts as unknown) || typeof header.version !== 'string') throw corrupt(file, 'header lacks parts or version');
  if (!header.parts.every(wellFormedPart)) throw corrupt(file, 'a part in the header lacks its name, shape, slice or slot names');
  const dataBytes = header.parts.reduce((n, p) => n + p.sliceLength * 4 * (1 + p.slots.length), 0);
  if (16 + headerLength + dataBytes + 4 !== bytes.length) throw corrupt(file, `holds ${bytes.length} bytes; its header describes ${16 + headerLength + dataBytes + 4}`);
  const values = new Map<string, Float32Array>();
  const slots = new Map<string, Float32Array>();
  let at = 16 + headerLength;
  const take = (n: number) => {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(bytes.subarray(at, at + n * 4));
    at += n * 4;
    return out;
  };
  for (const p of header.parts) {
    values.set(partKey(p.name, p.sliceStart), take(p.sliceLength));
    for (const slot of p.slots) slots.set(partKey(`${p.name}:${slot}`, p.sliceStart), take(p.sliceLength));
  }
  return { header, values, slots };
}
