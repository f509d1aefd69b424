/** pnpm demo:build: each demo's static site in demos/<name>/dist/, with its size report; exit 1 over budget. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMOS_DIR, DEMO_NAMES, buildDemo, sizeTable } from './site.js';

const sizes = [];
for (const demo of DEMO_NAMES) {
  const size = await buildDemo(demo);
  writeFileSync(join(DEMOS_DIR, demo, 'dist', 'size.json'), `${JSON.stringify(size, null, 2)}\n`);
  sizes.push(size);
  process.stdout.write(`built demos/${demo}/dist/\n`);
}
process.stdout.write(`${sizeTable(sizes)}\n`);
const over = sizes.flatMap((s) => s.overBudget.map((o) => `${s.demo}: ${o}`));
if (over.length > 0) {
  process.stderr.write(`over budget (demos/budgets.ts):\n${over.map((o) => `  ${o}`).join('\n')}\n`);
  process.exit(1);
}
