/**
 * Variants of one `tamp train` job run alternately, round by round, so load
 * on a shared machine falls on each alike (bench:checkpoint, bench:replica).
 * Each run's report.json samples/s, and its workers' epoch lines' mean
 * milliseconds per step by phase (`--verbose`: "ms per step: compute 12.3,
 * waitPush 4.5, ...").
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { TAMP_BIN } from '../helpers/tamp.js';

/** A whole-number flag of the command line, at least 1 (`fallback` when absent). */
export function wholeFlag(name: string, fallback: string): number {
  const at = process.argv.indexOf(name);
  const n = Number(at === -1 ? fallback : process.argv[at + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a whole number, at least 1`);
  return n;
}

export interface Variant {
  readonly name: string;
  readonly args: readonly string[];
}

export interface VariantRuns {
  /** report.json samples/s, one per run. */
  readonly samplesPerSecond: number[];
  /** One per worker epoch line of every run: mean ms per step by phase. */
  readonly phases: Array<Record<string, number>>;
}

export interface AlternatedRuns {
  readonly variants: VariantRuns[];
  /** Load average (1 min) at the start of each run, in run order. */
  readonly loads: number[];
}

/** `rounds` rounds of every variant of `tamp <base> <variant args> --out DIR --verbose`, in `work`. */
export function alternateRuns(base: readonly string[], variants: readonly Variant[], rounds: number, work: string): AlternatedRuns {
  const runs: VariantRuns[] = variants.map(() => ({ samplesPerSecond: [], phases: [] }));
  const loads: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const [i, v] of variants.entries()) {
      const out = join(work, `${round}-${i}`);
      // --verbose (not --json): the workers' epoch lines, with where each step's time went, reach stderr.
      const args = [...base, ...v.args, '--out', out, '--verbose'];
      process.stderr.write(`$ tamp ${args.join(' ')}\n`);
      loads.push(loadavg()[0] as number);
      const r = spawnSync(process.execPath, [TAMP_BIN, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      if (r.status !== 0) throw new Error(`tamp ${args.join(' ')} failed:\n${r.stderr.slice(-3000)}`);
      const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { samplesPerSecond: number };
      const mine = runs[i] as VariantRuns;
      mine.samplesPerSecond.push(report.samplesPerSecond);
      for (const m of r.stderr.matchAll(/ms per step: ([^"\n]*)/g)) {
        mine.phases.push(Object.fromEntries([...(m[1] as string).matchAll(/(\w+) ([\d.]+)/g)].map((p) => [p[1] as string, Number(p[2])])));
      }
      process.stderr.write(`  ${v.name}: ${report.samplesPerSecond.toFixed(1)} samples/s\n`);
      rmSync(out, { recursive: true, force: true });
    }
  }
  return { variants: runs, loads };
}

/** Mean over epoch lines of `pick(line)` (0 when there are none). */
export function meanOf(lines: ReadonlyArray<Record<string, number>>, pick: (phases: Record<string, number>) => number): number {
  return lines.length === 0 ? 0 : lines.reduce((n, l) => n + pick(l), 0) / lines.length;
}

/** A line's whole step: the sum of its phases. */
export function stepMs(phases: Record<string, number>): number {
  return Object.values(phases).reduce((a, b) => a + b, 0);
}
