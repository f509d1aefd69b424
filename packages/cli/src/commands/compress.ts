import { type BackendRequest, UsageError } from '@tamp/core';
import { checkOutputFolder, useBackend } from '@tamp/core/node';
import { type CompressReport, compressModel } from '@tamp/compress/node';
import { defineCommand } from '../command.js';
import { formatBytes, percent, table } from '../output.js';
import { backendOption } from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

export function compressSummary(r: CompressReport): string {
  const rows = r.layers.map((l) => [
    l.name,
    `[${l.shape.join(',')}]`,
    l.parameters,
    l.encoding,
    percent(l.kept, 1),
    l.bitsPerWeight.toFixed(2),
    l.indexBits > 0 ? l.indexBits.toFixed(2) : '-',
    l.valueBits.toFixed(2),
    formatBytes(l.bytes),
  ]);
  const acc = (a: number | undefined) => (a === undefined ? 'not measured' : percent(a));
  return [
    table(rows, ['tensor', 'shape', 'parameters', 'encoding', 'kept', 'bits/weight', 'index bits', 'value bits', 'bytes']),
    '',
    table([
      ['fp32 weights', formatBytes(r.originalBytes)],
      ['model.tamp', `${formatBytes(r.compressedBytes)} (${r.ratio.toFixed(2)}x smaller)`],
      ['tfjs export (uint8)', `${formatBytes(r.tfjs.weightBytes)} weights (${r.tfjs.ratio.toFixed(2)}x)`],
      ...(r.task === 'detection'
        ? [
            ['mAP@0.5 before', acc(r.mAPBefore)],
            ['mAP@0.5 after (.tamp)', acc(r.mAPAfter)],
            ['mAP@0.5 of the tfjs export', acc(r.tfjs.accuracy)],
          ]
        : [
            ['accuracy before', acc(r.accuracyBefore)],
            ['accuracy after (.tamp)', acc(r.accuracyAfter)],
            ['accuracy of the tfjs export', acc(r.tfjs.accuracy)],
          ]),
      ['top-1 agreement .tamp / export', r.tfjs.top1Agreement === undefined ? '-' : percent(r.tfjs.top1Agreement)],
      ['techniques', r.techniques.join(', ')],
      ['weights kept', percent(r.kept, 1)],
      ...(r.plot !== undefined ? [['accuracy vs sparsity', r.plot]] : []),
    ]),
  ].join('\n');
}

export const compressCommand = defineCommand({
  name: 'compress',
  summary: COMMAND_SUMMARIES.compress,
  positionals: [{ name: 'model', description: 'a trained model.json', required: true }],
  options: {
    out: { type: 'string', value: 'dir', description: 'output folder: model.tamp, tfjs/model.json, report.json' },
    prune: { type: 'number', min: 0, max: 0.999, description: 'fraction of weights to remove (0.92 removes 92%), by magnitude, while fine-tuning' },
    pattern: { type: 'string', choices: ['unstructured', '2:4'], default: 'unstructured', description: '2:4: keep two of every four weights (structured, 50%)' },
    'prune-scope': { type: 'string', choices: ['global', 'layer'], default: 'global', description: 'one magnitude threshold over all layers, or the same sparsity in each' },
    clusters: { type: 'number', integer: true, min: 2, max: 256, description: 'shared values per layer (k-means weight sharing)' },
    int8: { type: 'boolean', description: 'int8 weights, per output channel (the default when no other technique is chosen)' },
    'finetune-epochs': { type: 'number', integer: true, min: 0, default: 2, description: 'fine-tuning epochs while pruning (weight sharing fine-tunes half as many)' },
    'finetune-epoch-size': { type: 'number', integer: true, min: 1, value: 'n', description: 'samples per fine-tuning epoch (default: the whole training split)' },
    'finetune-lr': { type: 'number', min: 0, default: 0.0002, description: 'fine-tuning learning rate (Adam)' },
    seed: { type: 'number', integer: true, default: 1, description: 'seed for fine-tuning data order and k-means' },
    dataset: { type: 'string', value: 'name|folder', description: 'measure accuracy on its test split (default: the dataset the model was trained on)' },
    backend: backendOption,
  },
  async run({ options, positionals, out }) {
    if (options.out === undefined) throw new UsageError('tamp compress needs --out DIR');
    checkOutputFolder(options.out);
    await useBackend(options.backend as BackendRequest, { log: (m) => out.debug(m) });
    const reshape = options.prune !== undefined || options.pattern === '2:4' || options.clusters !== undefined;
    const report = await compressModel({
      model: positionals[0] as string,
      out: options.out,
      int8: options.int8 || !reshape,
      ...(options.prune !== undefined ? { prune: options.prune } : {}),
      pattern: options.pattern as 'unstructured' | '2:4',
      scope: options['prune-scope'] as 'global' | 'layer',
      ...(options.clusters !== undefined ? { clusters: options.clusters } : {}),
      finetuneEpochs: options['finetune-epochs'],
      ...(options['finetune-epoch-size'] !== undefined ? { finetuneEpochSize: options['finetune-epoch-size'] } : {}),
      finetuneLearningRate: options['finetune-lr'],
      seed: options.seed,
      ...(options.dataset !== undefined ? { dataset: options.dataset } : {}),
      log: (m) => out.log(m),
    });
    return { result: report, text: compressSummary(report) };
  },
});
