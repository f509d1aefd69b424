/**
 * tamp score: batch and stream scoring. A file or folder in, NDJSON or CSV
 * out, resumable with --resume after a crash; or `--input -` (NDJSON on
 * standard input) to standard output, in input order, as results are ready.
 */
import { resolve } from 'node:path';
import { formatOf, openSource, ResumableOutput, scoreToFile, scoreToStream } from '@tamp/serve';
import type { DeviceRequest } from '@tamp/webgpu';
import { loadModelWithSelection } from '@tamp/webgpu/node';
import { UsageError } from '@tamp/core';
import { defineCommand } from '../command.js';
import { table } from '../output.js';
import { deviceOption, dryRunOption, dryRunResult } from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

export const scoreCommand = defineCommand({
  name: 'score',
  summary: COMMAND_SUMMARIES.score,
  positionals: [{ name: 'model', description: 'a tfjs model.json or a model.tamp', required: true }],
  options: {
    input: { type: 'string', value: 'PATH', description: 'an IDX file, a folder of PNG/JPEG images, an NDJSON file ({"id","data"} or {"id","b64"} per line), or - for NDJSON on stdin' },
    out: { type: 'string', value: 'PATH', description: 'results: .ndjson/.jsonl or .csv, or - for stdout (NDJSON)' },
    'batch-size': { type: 'number', integer: true, min: 1, default: 64, description: 'samples per model call' },
    top: { type: 'number', integer: true, min: 1, default: 3, description: 'classes listed per row (classifiers)' },
    'score-threshold': { type: 'number', min: 0, max: 1, default: 0.3, description: 'detections below it are left out (detectors)' },
    resume: { type: 'boolean', description: 'continue an interrupted run into the same --out, after its last complete row' },
    overwrite: { type: 'boolean', description: 'replace an existing --out' },
    device: deviceOption,
    'dry-run': dryRunOption,
  },
  async run({ options, positionals, out }) {
    const [modelPath] = positionals as [string];
    const input = options.input;
    const outPath = options.out;
    if (input === undefined || outPath === undefined) throw new UsageError('tamp score needs --input PATH (or -) and --out PATH (or -)');
    const format = formatOf(outPath);
    const streaming = outPath === '-';
    if (streaming && options.resume) throw new UsageError('--resume needs --out FILE: standard output cannot be resumed');
    if (options['dry-run']) return dryRunResult('score', { model: modelPath, input, out: outPath, format, batchSize: options['batch-size'], device: options.device });
    const { model, selection } = await loadModelWithSelection(modelPath, { device: options.device as DeviceRequest, log: (m) => out.log(m) });
    try {
      const info = model.info();
      const detector = info.meta.task === 'detection' || (info.outputShape.length === 3 && info.inputShape.length === 3 && info.inputShape[2] === 3);
      const source = openSource(input, info.inputShape);
      const started = performance.now();
      let startRow = 0;
      const onProgress = (rows: number) => {
        const seconds = (performance.now() - started) / 1000;
        const rate = (rows - startRow) / Math.max(1e-3, seconds);
        const total = source.total ?? rows;
        out.progress({ label: 'score', done: rows, total, 'rows/s': rate, eta: source.total !== undefined ? `${Math.ceil((total - rows) / Math.max(rate, 1e-9))}s` : undefined });
      };
      const scoring = { batchSize: options['batch-size'], top: options.top, scoreThreshold: options['score-threshold'], detector, format, onProgress };
      let rows: number;
      if (streaming) {
        rows = await scoreToStream(model, source, process.stdout, scoring);
      } else {
        const output = ResumableOutput.open(outPath, { model: resolve(modelPath), input: input === '-' ? '-' : resolve(input), format }, { resume: options.resume, overwrite: options.overwrite });
        startRow = output.rows;
        if (startRow > 0) out.log(`resuming ${outPath} after row ${startRow}`);
        try {
          rows = await scoreToFile(model, source, output, scoring);
        } catch (e) {
          output.close();
          throw e;
        }
      }
      out.endProgress();
      const seconds = (performance.now() - started) / 1000;
      const result = { model: modelPath, input, out: outPath, device: selection.name, rows, resumedAfter: startRow, seconds, rowsPerSecond: rows / Math.max(1e-3, seconds) };
      // Streaming owns stdout: the summary goes to stderr only.
      if (streaming) {
        out.log(`scored ${rows} rows on ${selection.name} (${result.rowsPerSecond.toFixed(0)} rows/s)`);
        return { result: undefined, text: '' };
      }
      return { result, text: table([['rows', rows], ['device', selection.name], ['rows/s', result.rowsPerSecond], ['out', outPath]]) };
    } finally {
      model.dispose();
    }
  },
});
