/**
 * What `tamp score` reads: an IDX file of images, a folder of PNG/JPEG
 * images, or NDJSON rows (a file, or `-` for standard input). NDJSON rows are
 * `{"id": ..., "data": [numbers]}` (flat or nested, the model's input for one
 * sample) or `{"id": ..., "b64": "<PNG or JPEG>"}`; `id` defaults to the row
 * number. Lines are read with backpressure: at most `window` rows wait
 * between the reader and the model, so a slow consumer pauses the input
 * instead of filling memory.
 */
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, UsageError } from '@tamp/core';
import { parseIdx } from '@tamp/core/node';

export interface ScoreRow {
  readonly id: string;
  /** One sample's input values, or */
  readonly data?: Float32Array;
  /** an encoded image. */
  readonly image?: Uint8Array;
}

export interface ScoreSource {
  /** Rows in all (undefined for streams). */
  readonly total: number | undefined;
  /** Rows from `start` on, in order. */
  rows(start: number): AsyncIterable<ScoreRow>;
}

const IMAGE = /\.(png|jpe?g)$/i;

function flatNumbers(v: unknown, out: number[], what: string): void {
  if (Array.isArray(v)) for (const x of v) flatNumbers(x, out, what);
  else if (typeof v === 'number' && Number.isFinite(v)) out.push(v);
  else throw new InvalidArgumentError(`${what}: ${JSON.stringify(v)} is not a finite number`);
}

export function parseRow(line: string, index: number, per: number): ScoreRow {
  const what = `input row ${index + 1}`;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new InvalidArgumentError(`${what} is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(`${what} must be an object: {"id": ..., "data": [...]} or {"id": ..., "b64": "..."}`);
  const row = v as { id?: unknown; data?: unknown; b64?: unknown };
  const id = row.id === undefined ? String(index) : typeof row.id === 'string' || typeof row.id === 'number' ? String(row.id) : undefined;
  if (id === undefined) throw new InvalidArgumentError(`${what}: "id" must be a string or a number`);
  if (typeof row.b64 === 'string') return { id, image: new Uint8Array(Buffer.from(row.b64, 'base64')) };
  if (row.data === undefined) throw new InvalidArgumentError(`${what} has neither "data" nor "b64"`);
  const nums: number[] = [];
  flatNumbers(row.data, nums, what);
  if (nums.length !== per) throw new InvalidArgumentError(`${what} has ${nums.length} values; the model takes ${per} per sample`);
  return { id, data: Float32Array.from(nums) };
}

/** NDJSON lines of a stream, with at most `window` parsed rows waiting. */
async function* ndjsonRows(stream: Readable, start: number, per: number, window: number): AsyncGenerator<ScoreRow> {
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  const queue: string[] = [];
  let ended = false;
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  lines.on('line', (l) => {
    if (l.trim() === '') return;
    queue.push(l);
    if (queue.length >= window) lines.pause();
    wake?.();
  });
  lines.once('close', () => {
    ended = true;
    wake?.();
  });
  stream.once('error', (e: Error) => {
    failed = e;
    wake?.();
  });
  let index = 0;
  try {
    for (;;) {
      if (failed !== undefined) throw failed;
      const line = queue.shift();
      if (line === undefined) {
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
        continue;
      }
      if (queue.length < window / 2) lines.resume();
      if (index >= start) yield parseRow(line, index, per);
      index++;
    }
  } finally {
    lines.close();
  }
}

export function openSource(path: string, inputShape: readonly number[], options: { stdin?: Readable; window?: number } = {}): ScoreSource {
  const per = inputShape.reduce((a, b) => a * b, 1);
  const window = options.window ?? 256;
  if (path === '-') return { total: undefined, rows: (start) => ndjsonRows(options.stdin ?? process.stdin, start, per, window) };
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UsageError(`--input ${path}: no such file or folder (an IDX file, a folder of PNG/JPEG images, an NDJSON file, or - for standard input)`);
  }
  if (st.isDirectory()) {
    const files = readdirSync(path).filter((f) => IMAGE.test(f)).sort();
    if (files.length === 0) throw new UsageError(`--input ${path}: the folder holds no .png, .jpg or .jpeg images`);
    return {
      total: files.length,
      async *rows(start) {
        for (let i = start; i < files.length; i++) yield { id: files[i] as string, image: new Uint8Array(readFileSync(join(path, files[i] as string))) };
      },
    };
  }
  if (/\.(ndjson|jsonl)$/i.test(path)) {
    const total = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').length;
    return { total, rows: (start) => ndjsonRows(createReadStream(path), start, per, window) };
  }
  const idx = parseIdx(new Uint8Array(readFileSync(path)), path);
  const [n = 0, ...rest] = idx.dims;
  const size = rest.reduce((a, b) => a * b, 1);
  if (idx.dims.length < 2 || size !== per) throw new InvalidArgumentError(`--input ${path}: IDX samples of [${rest.join(', ')}] (${size} values) do not fit the model's input [${inputShape.join(', ')}]`);
  return {
    total: n,
    async *rows(start) {
      // Bytes scaled to [0, 1], as Tamp's image models take them.
      for (let i = start; i < n; i++) yield { id: String(i), data: Float32Array.from(idx.data.subarray(i * size, (i + 1) * size), (b) => b / 255) };
    },
  };
}
