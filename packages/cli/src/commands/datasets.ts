import { listDatasets } from '@tamp/core/node';
import { defineCommand } from '../command.js';
import { table } from '../output.js';

export const datasetsCommand = defineCommand({
  name: 'datasets',
  summary: 'List the datasets Tamp can train and evaluate on, and where each comes from.',
  positionals: [],
  options: {},
  async run() {
    const datasets = listDatasets();
    const rows = datasets.map((d) => [
      d.name,
      d.task,
      d.available ? 'yes' : `no: ${d.install ?? ''}`,
      d.splits !== undefined ? `${d.trainUnlimited === true ? 'unlimited' : d.splits.train}/${d.splits.validation}/${d.splits.test}` : '-',
      d.source,
    ]);
    return { result: { datasets }, text: table(rows, ['name', 'task', 'available', 'train/val/test', 'source']) };
  },
});
