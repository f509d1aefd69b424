import { type BackendRequest, UsageError } from '@tamp/core';
import { useBackend } from '@tamp/core/node';
import { type CompressReport, compressModel } from '@tamp/compress/node';
import { defineCommand } from '../command.js';
import { formatBytes, percent, table } from '../output.js';
import { backendOption } from './shared-options.js';

export function compressSummary(r: CompressReport): string {
  const rows = r.layers.map((l) => [
    l.name,
    `[${l.shape.join(',')}]`,
    l.parameters,
    l.encoding,
    l.bitsPerWeight.toFixed(2),
    formatBytes(l.bytes),
    l.maxError !== undefined ? `${l.maxError.toExponential(2)} (<= ${(l.maxHalfStep as number).toExponential(2)})` : '-',
  ]);
  const acc = (a: number | undefined) => (a === undefined ? 'not measured' : percent(a));
  return [
    table(rows, ['tensor', 'shape', 'parameters', 'encoding', 'bits/weight', 'bytes', 'max error (half step)']),
    '',
    table([
      ['fp32 weights', formatBytes(r.originalBytes)],
      ['model.tamp', `${formatBytes(r.compressedBytes)} (${r.ratio.toFixed(2)}x smaller)`],
      ['tfjs export (uint8)', `${formatBytes(r.tfjs.weightBytes)} weights (${r.tfjs.ratio.toFixed(2)}x)`],
      ['accuracy before', acc(r.accuracyBefore)],
      ['accuracy after (.tamp)', acc(r.accuracyAfter)],
      ['accuracy of the tfjs export', acc(r.tfjs.accuracy)],
      ['top-1 agreement .tamp / export', r.tfjs.top1Agreement === undefined ? '-' : percent(r.tfjs.top1Agreement)],
    ]),
  ].join('\n');
}

export const compressCommand = defineCommand({
  name: 'compress',
  summary: 'Compress a trained model: model.tamp (int8 per channel), a stock-tfjs export, and a report.',
  positionals: [{ name: 'model', description: 'a trained model.json', required: true }],
  options: {
    out: { type: 'string', value: 'dir', description: 'output folder: model.tamp, tfjs/model.json, report.json' },
    int8: { type: 'boolean', description: 'int8 weights, per output channel (the default when no other technique is chosen)' },
    dataset: { type: 'string', value: 'name|folder', description: 'measure accuracy on its test split (default: the dataset the model was trained on)' },
    backend: backendOption,
  },
  async run({ options, positionals, out }) {
    if (options.out === undefined) throw new UsageError('tamp compress needs --out DIR');
    await useBackend(options.backend as BackendRequest, { log: (m) => out.debug(m) });
    const report = await compressModel({
      model: positionals[0] as string,
      out: options.out,
      int8: true,
      ...(options.dataset !== undefined ? { dataset: options.dataset } : {}),
      log: (m) => out.log(m),
    });
    return { result: report, text: compressSummary(report) };
  },
});
