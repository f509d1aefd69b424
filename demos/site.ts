/**
 * Building the demos (pnpm demo:build) and serving them (pnpm demo), as a
 * module the end-to-end tests use too: Vite's own build, then a size report
 * (JS gzip, model bytes) checked against budgets.ts.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { type InlineConfig, build } from 'vite';
import { BUDGETS, type DemoName } from './budgets.js';

export const DEMOS_DIR = fileURLToPath(new URL('.', import.meta.url));
export const DEMO_NAMES = Object.keys(BUDGETS) as DemoName[];

export interface DemoSize {
  readonly demo: DemoName;
  /** Every .js file of the build, gzipped (level 9) one by one, summed. */
  readonly jsGzipBytes: number;
  readonly jsBytes: number;
  /** tfjs's .wasm binaries (loaded only when the page falls back to WASM), gzipped. */
  readonly wasmGzipBytes: number;
  /** Model files by name (relative to models/), in bytes. */
  readonly models: Record<string, number>;
  readonly overBudget: string[];
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

export async function buildDemo(demo: DemoName, outDir = join(DEMOS_DIR, demo, 'dist')): Promise<DemoSize> {
  const root = join(DEMOS_DIR, demo);
  const config: InlineConfig = { root, configFile: join(root, 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true } };
  await build(config);
  return measure(demo, outDir);
}

export function measure(demo: DemoName, outDir: string): DemoSize {
  const all = files(outDir);
  const gz = (path: string) => gzipSync(readFileSync(path), { level: 9 }).length;
  const js = all.filter((f) => f.endsWith('.js'));
  const models: Record<string, number> = {};
  for (const f of all.filter((p) => relative(outDir, p).startsWith('models/'))) models[relative(join(outDir, 'models'), f)] = statSync(f).size;
  const size = {
    demo,
    jsGzipBytes: js.reduce((n, f) => n + gz(f), 0),
    jsBytes: js.reduce((n, f) => n + statSync(f).size, 0),
    wasmGzipBytes: all.filter((f) => f.endsWith('.wasm')).reduce((n, f) => n + gz(f), 0),
    models,
  };
  const budget = BUDGETS[demo];
  const overBudget: string[] = [];
  if (size.jsGzipBytes > budget.jsGzipBytes) overBudget.push(`JavaScript ${size.jsGzipBytes} bytes gzipped > budget ${budget.jsGzipBytes}`);
  for (const [file, limit] of Object.entries(budget.models)) {
    const bytes = models[file];
    if (bytes === undefined) overBudget.push(`model ${file} is missing from the build (run pnpm demo:models)`);
    else if (bytes > limit) overBudget.push(`model ${file} ${bytes} bytes > budget ${limit}`);
  }
  return { ...size, overBudget };
}

export function sizeTable(sizes: readonly DemoSize[]): string {
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  const rows = sizes.flatMap((s) => [
    `${s.demo.padEnd(8)} JS ${kib(s.jsGzipBytes)} gzipped (${kib(s.jsBytes)} raw; budget ${kib(BUDGETS[s.demo].jsGzipBytes)}), WASM fallback ${kib(s.wasmGzipBytes)} gzipped`,
    ...Object.entries(s.models).map(([f, b]) => `${''.padEnd(8)} model ${f}: ${kib(b)}${BUDGETS[s.demo].models[f] !== undefined ? ` (budget ${kib(BUDGETS[s.demo].models[f] as number)})` : ''}`),
  ]);
  return rows.join('\n');
}
