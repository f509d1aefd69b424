/**
 * pnpm bench:train-ab --baseline <git revision>: the cluster rows of bench:train for this checkout and
 * for an older revision, alternating run by run on the same machine, so that a change in throughput
 * can be told apart from a change of machine (bench:train's figures from different days come from
 * different machines).
 *
 *   pnpm bench:train-ab --baseline 5698010 [--rounds N] [--no-write]
 *
 * The baseline is checked out with `git worktree add --detach` into a temporary folder and installed
 * offline from its own lockfile; the worktree is removed at the end.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fmt, machine, markdownTable, median, writeSection } from './report.js';

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}
const baseline = flag('--baseline');
if (baseline === undefined) throw new Error('bench:train-ab needs --baseline <git revision> (e.g. --baseline 5698010)');
const ROUNDS = Number(flag('--rounds') ?? '3');
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('--rounds needs a whole number of rounds, at least 1');
const write = !process.argv.includes('--no-write');

const repo = resolve(import.meta.dirname, '../..');
const git = (...args: string[]) => {
  const r = spawnSync('git', args, { cwd: repo, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout.trim();
};
const work = mkdtempSync(join(tmpdir(), 'tamp-bench-ab-'));
const baseDir = join(work, 'baseline');
const baseCommit = git('rev-parse', '--short', baseline);
const headCommit = git('rev-parse', '--short', 'HEAD');
const dirty = git('status', '--porcelain') !== '';
git('worktree', 'add', '--detach', baseDir, baseCommit);

function cleanup(): void {
  spawnSync('git', ['worktree', 'remove', '--force', baseDir], { cwd: repo });
  rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);

const install = spawnSync('pnpm', ['install', '--frozen-lockfile', '--offline'], { cwd: baseDir, encoding: 'utf8' });
if (install.status !== 0) throw new Error(`pnpm install in the baseline ${baseCommit} failed:\n${install.stderr.slice(-2000)}`);

const CONFIGS = [
  ['lenet-300-100', 1, 'async'],
  ['lenet-300-100', 2, 'async'],
  ['lenet-300-100', 1, 'sync'],
  ['lenet-300-100', 2, 'sync'],
  ['lenet-5', 1, 'async'],
  ['lenet-5', 2, 'async'],
] as const;

function samplesPerSecond(dir: string, model: string, workers: number, mode: string): number {
  const out = join(work, String(Math.random()).slice(2));
  const args = ['packages/cli/bin/tamp.mjs', 'train', '--local', '--ps', '1', '--workers', String(workers), '--mode', mode, '--checkpoint-every', '0'];
  args.push('--model', model, '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '7000', '--batch-size', '64', '--backend', 'wasm', '--out', out, '--json');
  process.stderr.write(`${dir === repo ? headCommit : baseCommit}: tamp ${args.slice(1).join(' ')}\n`);
  const r = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', maxBuffer: 64 << 20 });
  rmSync(out, { recursive: true, force: true });
  if (r.status !== 0) {
    // A failed job is a result too (e.g. an old revision declaring busy workers dead): keep going, and say so in the table.
    const reason = /tamp: (.*)/.exec(r.stderr.split('\n').filter((l) => l.includes('tamp: ')).pop() ?? '')?.[1] ?? `exit ${r.status}`;
    process.stderr.write(`  failed: ${reason}\n`);
    failures.push(`${dir === repo ? headCommit : baseCommit} ${model}, ${workers} worker(s), ${mode}: ${reason}`);
    return Number.NaN;
  }
  return (JSON.parse(r.stdout) as { samplesPerSecond: number }).samplesPerSecond;
}

const loadBefore = loadavg()[0] as number;
const failures: string[] = [];
const results = new Map<string, { head: number[]; base: number[] }>();
for (let round = 0; round < ROUNDS; round++) {
  for (const [model, workers, mode] of CONFIGS) {
    const key = `${model}|${workers}|${mode}`;
    const entry = results.get(key) ?? { head: [], base: [] };
    results.set(key, entry);
    // Alternate which revision goes first, so neither always meets the machine right after the other's run.
    const order = round % 2 === 0 ? (['base', 'head'] as const) : (['head', 'base'] as const);
    for (const which of order) entry[which].push(samplesPerSecond(which === 'head' ? repo : baseDir, model, workers, mode));
  }
}

const show = (v: number) => (Number.isNaN(v) ? 'failed' : fmt(v));
const rows = CONFIGS.map(([model, workers, mode]) => {
  const { head, base } = results.get(`${model}|${workers}|${mode}`) as { head: number[]; base: number[] };
  return [
    model,
    `${workers} worker${workers > 1 ? 's' : ''}, ${mode}`,
    `${show(median(base))} (${base.map(show).join(' / ')})`,
    `${show(median(head))} (${head.map(show).join(' / ')})`,
    Number.isNaN(median(head) / median(base)) ? '-' : `${fmt(median(head) / median(base), 2)}x`,
  ];
});
const markdown = `## Cluster throughput against an older revision: \`pnpm bench:train-ab --baseline ${baseline} --rounds ${ROUNDS}\`

Machine: ${machine()}. The same \`tamp train --local --ps 1 --checkpoint-every 0 --epochs 1 --epoch-size 7000 --batch-size 64 --backend wasm\` jobs from the baseline ${baseCommit} and from ${headCommit}${dirty ? ' (with uncommitted changes)' : ''}, alternating run by run, ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}; the median counts (each run in brackets). Load average (1 min) ${loadBefore.toFixed(1)} at the start and ${(loadavg()[0] as number).toFixed(1)} at the end: other work shared the cores, which widens the spread but reaches both revisions alike. Use it when bench:train's figures move: its earlier rows may come from another machine.

${markdownTable(['model', 'job', `samples/s, ${baseCommit}`, `samples/s, ${headCommit}`, 'ratio'], rows)}${failures.length > 0 ? `\n\nRuns that failed (not in the medians):\n\n${failures.map((f) => `- ${f}`).join('\n')}` : ''}`;
process.stdout.write(`${markdown}\n`);
if (write) writeSection('bench:train-ab', markdown);
