/**
 * pnpm bench:load: 32 synthetic workers push and pull as fast as they can for
 * 30 s against 2 real parameter servers (test/helpers/synthetic-load.ts: SGD
 * at learning rate 1, gradients of known values, so the final values must
 * equal the predicted sum exactly). Records lost or doubled updates, errors,
 * the servers' RSS growth after warm-up, push and pull latency, in
 * BENCHMARKS.md's "load" section.
 *
 *   pnpm bench:load [--workers 32] [--seconds 30] [--elements 133000] [--no-write]
 */
import { runSyntheticLoad } from '../helpers/synthetic-load.js';
import { fmt, load, machine, markdownTable, writeSection } from './report.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}
const workers = arg('workers', 32);
const seconds = arg('seconds', 30);
const elements = arg('elements', 133_000);
const warmupSeconds = Math.min(10, seconds / 3);
const loadBefore = load();
const r = await runSyntheticLoad({ servers: 2, workers, elements, seconds, warmupSeconds });
const exact = r.mismatches === 0 && r.shards.every((s) => s.applied === s.acknowledged && s.version === s.acknowledged);
const growth = r.shards.map((s) => (s.rssEndMiB - s.rssWarmMiB) / s.rssWarmMiB);
const command = `pnpm bench:load --workers ${workers} --seconds ${seconds} --elements ${elements}`;
const markdown = `## Parameter servers under load (\`${command}\`)

${machine()} (at the start: ${loadBefore}). Two \`tamp ps\` processes on loopback, each holding one float32 variable of ${fmt(elements)} elements (${fmt((elements * 4) / 2 ** 20, 2)} MiB${elements === 133_000 ? "; the two together are LeNet-300-100's size" : ''}), assigned as the chief would: async, SGD at learning rate 1. ${workers} synthetic workers in one process, each with its own channels and slot token, push a gradient to both shards and pull both back, as fast as they can, for ${seconds} s. Every gradient value is a multiple of 1/8 in [1/8, 1], so every sum is exact in float32 in any order: the final values must equal the initial ones minus the acknowledged pushes, exactly.

${markdownTable(
  ['measure', 'value', 'goal'],
  [
    ['pushes acknowledged (both shards)', `${fmt(r.pushes)} in ${fmt(r.seconds, 1)} s (${fmt(r.pushes / r.seconds, 0)}/s), ${fmt(r.pulls)} pulls`, ''],
    ['lost or doubled updates', `${r.mismatches} elements differ from the predicted sum${r.firstMismatch !== undefined ? ` (first: ${r.firstMismatch})` : ''}; applied = acknowledged on ${r.shards.filter((s) => s.applied === s.acknowledged).length} of ${r.shards.length} shards`, `none: ${exact ? 'met' : 'missed'}`],
    ['errors nobody provoked', r.errors.length === 0 ? '0' : `${r.errors.length} (first: ${r.errors[0]})`, `none: ${r.errors.length === 0 ? 'met' : 'missed'}`],
    ...r.shards.map((s, i) => [`parameter server ${i} RSS, after ${fmt(warmupSeconds)} s of warm-up → end`, `${fmt(s.rssWarmMiB, 1)} → ${fmt(s.rssEndMiB, 1)} MiB (${growth[i] !== undefined && growth[i] >= 0 ? '+' : ''}${fmt((growth[i] ?? 0) * 100, 1)}%)`, `under +10%: ${(growth[i] ?? 1) < 0.1 ? 'met' : 'missed'}`]),
    ['push latency (one shard, whole message to answer)', `p50 ${fmt(r.pushMs.p50, 1)} ms, p99 ${fmt(r.pushMs.p99, 1)} ms`, 'recorded'],
    ['pull latency (one shard)', `p50 ${fmt(r.pullMs.p50, 1)} ms, p99 ${fmt(r.pullMs.p99, 1)} ms`, 'recorded'],
  ],
)}

Latency here is queueing: ${workers} workers share two cores with both servers, so each request waits behind the others'; the throughput row is what the servers sustain. \`test/ps-load.test.ts\` runs the same check in CI at 8 workers for 4 s.`;
process.stdout.write(`${markdown}\n`);
if (!process.argv.includes('--no-write')) writeSection('load', markdown);
if (!exact || r.errors.length > 0) process.exitCode = 1;
