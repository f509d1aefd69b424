/**
 * `tamp score`: a model over a large input, in batches: an IDX file, an image
 * folder or NDJSON to NDJSON or CSV rows (top classes and scores, or boxes),
 * resumable after a crash; or a stream, standard input to standard output in
 * input order, with backpressure both ways.
 */
import type { Writable } from 'node:stream';
import { decodeGrid, UsageError } from '@tamp/core';
import { gridOf, type InferenceModel } from '@tamp/webgpu';
import { imagesToSamples } from '../images.js';
import type { ResumableOutput } from './output.js';
import type { ScoreRow, ScoreSource } from './sources.js';

export type ScoreFormat = 'ndjson' | 'csv';

export interface ScoreOptions {
  readonly batchSize: number;
  /** Classes listed per row (classifiers). */
  readonly top: number;
  /** Detections below it are left out (detectors). */
  readonly scoreThreshold: number;
  readonly detector: boolean;
  readonly format: ScoreFormat;
  readonly onProgress?: (rows: number) => void;
}

export function formatOf(out: string): ScoreFormat {
  if (out === '-' || /\.(ndjson|jsonl)$/i.test(out)) return 'ndjson';
  if (/\.csv$/i.test(out)) return 'csv';
  throw new UsageError(`--out ${out}: name it .ndjson (or .jsonl) or .csv, or - for standard output (NDJSON)`);
}

function csvField(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvHeader(options: ScoreOptions): string {
  if (options.detector) return 'id,label,score,x1,y1,x2,y2\n';
  return `id,${Array.from({ length: options.top }, (_, i) => `class${i + 1},score${i + 1}`).join(',')}\n`;
}

/** Score one batch of rows; returns their output text, in order. */
async function scoreBatch(model: InferenceModel, rows: readonly ScoreRow[], options: ScoreOptions): Promise<string> {
  const info = model.info();
  const per = info.inputShape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(rows.length * per);
  rows.forEach((r, i) => x.set(r.data ?? imagesToSamples([r.image as Uint8Array], info.inputShape, `row "${r.id}"`), i * per));
  const y = await model.predict(x);
  const lines: string[] = [];
  if (options.detector) {
    const found = decodeGrid(y.data, rows.length, gridOf(info.outputShape), { scoreThreshold: options.scoreThreshold });
    rows.forEach((r, i) => {
      const boxes = (found[i] ?? []).map((d) => ({ label: d.label, score: d.score, box: [d.x1, d.y1, d.x2, d.y2] }));
      if (options.format === 'ndjson') lines.push(JSON.stringify({ id: r.id, boxes }));
      else for (const b of boxes) lines.push([csvField(r.id), b.label, b.score, ...b.box].join(','));
    });
  } else {
    const classes = y.data.length / rows.length;
    rows.forEach((r, i) => {
      const scores = Array.from(y.data.subarray(i * classes, (i + 1) * classes));
      const top = scores
        .map((score, c) => ({ class: c, score }))
        .sort((a, b) => b.score - a.score || a.class - b.class)
        .slice(0, options.top);
      lines.push(options.format === 'ndjson' ? JSON.stringify({ id: r.id, top }) : [csvField(r.id), ...top.flatMap((t) => [t.class, t.score])].join(','));
    });
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** Rows in batches of at most `size`; a partial batch goes as soon as the source has nothing more ready (streams answer promptly). */
async function* batches(rows: AsyncIterable<ScoreRow>, size: number): AsyncGenerator<ScoreRow[]> {
  const it = rows[Symbol.asyncIterator]();
  let next = it.next();
  for (;;) {
    const first = await next;
    if (first.done === true) return;
    const batch = [first.value];
    next = it.next();
    while (batch.length < size) {
      // Take what is already there without waiting for more.
      const ready = await Promise.race([next, new Promise<'wait'>((r) => setImmediate(() => r('wait')))]);
      if (ready === 'wait') break;
      if (ready.done === true) break;
      batch.push(ready.value);
      next = it.next();
    }
    yield batch;
  }
}

/** Score into a resumable file. Returns the rows written in this run. */
export async function scoreToFile(model: InferenceModel, source: ScoreSource, output: ResumableOutput, options: ScoreOptions): Promise<number> {
  const start = output.rows;
  if (start === 0 && options.format === 'csv') output.append(csvHeader(options), 0);
  let done = start;
  for await (const batch of batches(source.rows(start), options.batchSize)) {
    output.append(await scoreBatch(model, batch, options), batch.length);
    done += batch.length;
    options.onProgress?.(done);
  }
  output.finish();
  return done - start;
}

/** Score a stream to `out` in input order, waiting for `out` to drain (a slow reader pauses the input). */
export async function scoreToStream(model: InferenceModel, source: ScoreSource, out: Writable, options: ScoreOptions): Promise<number> {
  let done = 0;
  if (options.format === 'csv') out.write(csvHeader(options));
  for await (const batch of batches(source.rows(0), options.batchSize)) {
    const text = await scoreBatch(model, batch, options);
    done += batch.length;
    options.onProgress?.(done);
    if (!out.write(text)) await new Promise<void>((resolve, reject) => {
      out.once('drain', resolve);
      out.once('error', reject);
    });
  }
  return done;
}
