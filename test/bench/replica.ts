/**
 * pnpm bench:replica: what `--ps-replicas 1` (chain replication: each shard's
 * updates forwarded to a backup on the next parameter server before a push
 * is answered; ARCHITECTURE.md, "Faults") costs a LeNet-5 job per step:
 * `tamp train --local`, 2 parameter servers, 2 workers, sync, with and
 * without replicas, alternating run by run so load on a shared machine falls
 * on both alike. Results go to BENCHMARKS.md with the command and the load.
 *
 *   pnpm bench:replica [--rounds N] [--epochs E] [--epoch-size S] [--mode sync|async] [--no-write]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alternateRuns, meanOf, stepMs, wholeFlag as flag } from './ab-runs.js';
import { fmt, machine, markdownTable, median, writeSection } from './report.js';

const ROUNDS = flag('--rounds', '3');
const EPOCHS = flag('--epochs', '1');
const EPOCH_SIZE = flag('--epoch-size', '4096');
const modeAt = process.argv.indexOf('--mode');
const MODE = modeAt === -1 ? 'sync' : String(process.argv[modeAt + 1]);
if (MODE !== 'sync' && MODE !== 'async') throw new Error('--mode must be sync or async');
const write = !process.argv.includes('--no-write');
const work = mkdtempSync(join(tmpdir(), 'tamp-bench-replica-'));

const base = ['train', '--local', '--ps', '2', '--workers', '2', '--model', 'lenet-5', '--dataset', 'mnist', '--mode', MODE, '--epochs', String(EPOCHS), '--epoch-size', String(EPOCH_SIZE), '--seed', '1'];
const variants = [
  { name: 'no replicas', args: ['--ps-replicas', '0'] },
  { name: '--ps-replicas 1', args: ['--ps-replicas', '1'] },
];

const { variants: runs, loads } = alternateRuns(base, variants, ROUNDS, work);
rmSync(work, { recursive: true, force: true });
const step = runs.map((r) => meanOf(r.phases, stepMs));
// Sync waits for its push and the next pull together (counted as push wait); async splits them.
const waits = runs.map((r) => meanOf(r.phases, (p) => (p.waitPush ?? 0) + (p.waitPull ?? 0)));
const rate = runs.map((r) => median(r.samplesPerSecond));
const rows = variants.map((v, i) => [
  v.name,
  `\`tamp ${[...base, ...v.args].join(' ')} --out DIR\``,
  (runs[i]?.samplesPerSecond ?? []).map((x) => fmt(x, 1)).join(', '),
  fmt(rate[i] ?? 0, 1),
  fmt(step[i] ?? 0, 1),
  fmt(waits[i] ?? 0, 1),
]);
const perStep = (step[1] ?? 0) - (step[0] ?? 0);
const slower = (1 - (rate[1] ?? 0) / (rate[0] ?? 1)) * 100;
const markdown = [
  `## Replica cost: \`pnpm bench:replica --rounds ${ROUNDS} --epochs ${EPOCHS} --epoch-size ${EPOCH_SIZE}${MODE !== 'sync' ? ` --mode ${MODE}` : ''}\``,
  '',
  `Machine: ${machine()}. Load average (1 min) at the start of each run: ${loads.map((l) => l.toFixed(2)).join(', ')}. The two variants alternate run by run. samples/s is report.json's; "ms per step" is the workers' mean step (all phases) from their epoch lines, and "waiting on the servers" its push and pull waits (mean over the epoch lines of all runs).`,
  '',
  markdownTable(['run', 'command', 'samples/s per run', 'median samples/s', 'ms per step', 'of which waiting on the servers'], rows),
  '',
  `With \`--ps-replicas 1\` a step takes ${fmt(perStep, 1)} ms more (${fmt(step[0] ?? 0, 1)} → ${fmt(step[1] ?? 0, 1)} ms), and the median samples/s is ${fmt(Math.abs(slower), 1)}% ${slower >= 0 ? 'lower' : 'higher'}. The cost is one forwarding round trip per update (the gradients the optimizer took, a shard's size, to the backup) before the push is answered, plus the backup's own optimizer step on the same cores: on one 2-core machine every role competes for them, so this is an upper bound on what separate machines would see.`,
].join('\n');
process.stdout.write(`${markdown}\n`);
if (write) writeSection('bench:replica', markdown);
