/** Shared by the benchmarks: machine description and BENCHMARKS.md sections. */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { version_core } from '@tensorflow/tfjs-core';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; tfjs ${version_core}; ${new Date().toISOString().slice(0, 10)}; ${load()}`;
}

/**
 * The 1/5/15-minute load averages when the section is written: the machine is
 * shared, so a reader needs them to judge the absolute numbers (ratios within
 * one run are what the sections compare).
 */
export function load(): string {
  const [one, five, fifteen] = loadavg().map((n) => n.toFixed(2));
  return `load average ${one} / ${five} / ${fifteen} (1/5/15 min) on ${cpus().length} cores, shared with other jobs`;
}

/** The start of a hand note in BENCHMARKS.md (a paragraph written after a run: what its numbers mean, what did not pay). */
export const HAND_NOTE = '*Note added by hand';

/** The line that heads hand notes carried over from an earlier run of a section. */
export const KEPT_NOTES =
  "*Hand notes from earlier runs of this section, kept when a run rewrote it: where a note says \"the table above\" or \"this run\", it means its own run's table, which `git log -p BENCHMARKS.md` still has.*";

/**
 * `text` with the section `name` (between its BEGIN and END markers) replaced
 * by `markdown`, or `markdown` appended as that section. The old section's
 * hand notes (from its first line that starts a hand note, or the line that
 * heads notes kept before) follow the new markdown under KEPT_NOTES, so a
 * rerun of a benchmark keeps what was measured and tried around it.
 */
export function replaceSection(text: string, name: string, markdown: string): string {
  const begin = `<!-- BEGIN ${name} -->`;
  const end = `<!-- END ${name} -->`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a === -1 || b < a) return `${text.trimEnd()}\n\n${begin}\n${markdown.trim()}\n${end}\n`;
  const old = text.slice(a + begin.length, b);
  const starts = [KEPT_NOTES, HAND_NOTE].map((line) => old.indexOf(`\n${line}`)).filter((i) => i !== -1);
  const notes = starts.length === 0 ? '' : old.slice(Math.min(...starts) + 1).trimEnd();
  // After a blank line: a paragraph right under a table would read as one more row of it.
  const kept = notes === '' ? '' : `\n\n${notes.startsWith(KEPT_NOTES) ? '' : `${KEPT_NOTES}\n`}${notes}`;
  return `${text.slice(0, a)}${begin}\n${markdown.trim()}${kept}\n${end}${text.slice(b + end.length)}`;
}

/** Replace (or append) the section of BENCHMARKS.md between this benchmark's markers, keeping its hand notes (replaceSection). */
export function writeSection(name: string, markdown: string): void {
  const file = join(REPO, 'BENCHMARKS.md');
  writeFileSync(file, replaceSection(readFileSync(file, 'utf8'), name, markdown));
}

export function markdownTable(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The median of the runs that finished (NaN for a failed run is left out; NaN if none finished). */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
