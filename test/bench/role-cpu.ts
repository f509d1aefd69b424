/**
 * pnpm bench:role-cpu: the CPU each role of a cluster spends per training
 * step, where no link limits it: `tamp train --local` (LeNet-300-100, MNIST,
 * one parameter server, one worker, async, loopback) for each pair of wire
 * codecs. Every 100 ms it reads /proc's utime + stime (all threads) of each
 * role the launcher started. A job of one epoch and one of EPOCHS epochs
 * alternate; the difference in CPU over the difference in steps leaves
 * start-up, loading the data and the final evaluation out. The chief also
 * scores every epoch, so its figure includes EPOCHS − 1 evaluations spread
 * over the steps; the parameter server's and the worker's are per step only.
 *
 * The network lab's `cores busy` (pnpm bench:wire) counts the whole machine
 * while a link limits the step; this counts each role apart, so a change to
 * one role's hot path shows as that role's milliseconds.
 *
 *   --codecs 'fp32/fp32,int8/int8'   push/pull pairs (default: those two)
 *   --rounds N                        pairs of jobs per codec pair (default 3); the median is reported
 *   --baseline DIR                    also run the checkout in DIR (say, a git worktree of an earlier
 *                                     commit), its jobs alternating with this checkout's in every round
 *                                     (taking turns to go first) and paired by round in a difference row
 *   --no-write                        print the section instead of writing BENCHMARKS.md
 *   --lab 1,4                         instead of loopback: the network lab (test/helpers/netlab.ts; root),
 *                                     one job per worker count, the parameter server and the chief on a
 *                                     1 Gbit/s host, each worker on its own --mbit link (default 100), as
 *                                     bench:wire's scaling rows run them; the worker column is then the CPU
 *                                     of all workers over all their steps (one worker's per step of its own),
 *                                     and a column gives the cores the job kept busy at its step rate. Writes
 *                                     the section "role-cpu:lab".
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetworkLab } from '../helpers/netlab.js';
import { REPO, TAMP_BIN } from '../helpers/tamp.js';
import { fmt, machine, markdownTable, median, writeSection } from './report.js';

const EPOCHS = 5;
const ROLES = ['ps', 'chief', 'worker'] as const;
type Role = (typeof ROLES)[number];

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}
const ROUNDS = Number(arg('--rounds') ?? 3);
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1)) throw new Error('--rounds N: give a whole number of rounds, 1 or more');
const PAIRS = (arg('--codecs') ?? 'fp32/fp32,int8/int8').split(',').map((pair) => {
  const [push, pull] = pair.split('/');
  if (push === undefined || pull === undefined || push === '' || pull === '') throw new Error(`--codecs: "${pair}" is not push/pull (e.g. int8/int8)`);
  return { push, pull };
});
const write = !process.argv.includes('--no-write');
const BASELINE = arg('--baseline');
/** --lab W1,W2: worker counts in the network lab (undefined: loopback, one worker). */
const LAB = arg('--lab')
  ?.split(',')
  .map((w) => {
    const n = Number(w);
    if (!(Number.isInteger(n) && n >= 1 && n <= 16)) throw new Error(`--lab: "${w}" is not a worker count from 1 to 16 (e.g. --lab 1,4)`);
    return n;
  });
const MBIT = Number(arg('--mbit') ?? 100);
if (!(MBIT > 0)) throw new Error('--mbit N: the workers\' link rate in Mbit/s, above 0');

/** The commit a checkout is at (and whether it has changes), for the table. */
function revision(dir: string): string {
  const rev = spawnSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).stdout.trim() !== '';
  return `${rev || 'unknown'}${dirty ? ' with changes' : ''}`;
}
const TREES = [
  { label: `this checkout (${revision(REPO)})`, bin: TAMP_BIN },
  ...(BASELINE !== undefined ? [{ label: `baseline (${revision(BASELINE)})`, bin: join(BASELINE, 'packages/cli/bin/tamp.mjs') }] : []),
];

// Linux's clock ticks per second for /proc's utime and stime (USER_HZ, 100 on every Linux Node supports).
const TICK_MS = 10;

/** /proc/PID/stat's fields after the command's closing parenthesis: state ppid ... utime (12th) stime (13th). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}
const cpuMs = (fields: readonly string[]) => (Number(fields[11]) + Number(fields[12])) * TICK_MS;

/** utime + stime (ms) of each process whose parent is `parent`, by the role its command line names. */
function childCpu(parent: number): Map<number, { role: Role; ms: number }> {
  const found = new Map<number, { role: Role; ms: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = statFields(Number(entry));
      if (Number(fields[1]) !== parent) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const role = argv[2] as Role;
      if (!ROLES.includes(role)) continue;
      found.set(Number(entry), { role, ms: cpuMs(fields) });
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return found;
}

interface Run {
  readonly steps: number;
  readonly ms: Record<Role, number>;
  /** Seconds the workers trained (the longest worker's), for the cores the job kept busy. */
  readonly seconds: number;
}

/** utime + stime (ms) of one process, or undefined once it has ended. */
function processCpu(pid: number): number | undefined {
  try {
    return cpuMs(statFields(pid));
  } catch {
    return undefined;
  }
}

/** One job in the network lab with `workers` workers, each role's CPU sampled every 100 ms until it exits. */
async function labJob(bin: string, epochs: number, push: string, pull: string, workers: number): Promise<Run> {
  const out = mkdtempSync(join(tmpdir(), 'tamp-role-cpu-'));
  const lab = NetworkLab.create([{ name: 'ps', mbit: 1000 }, ...Array.from({ length: workers }, (_, i) => ({ name: `w${i}`, mbit: MBIT }))]);
  try {
    const ps = lab.host('ps').address;
    const job = ['--job-id', 'role-cpu', '--insecure'];
    const training = ['--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', String(epochs), '--lr', '0.001', '--batch-size', '64', '--seed', '1', '--mode', 'async', '--wire-push', push, '--wire-pull', pull];
    const roles: Array<[Role, string, string[]]> = [
      ['ps', 'ps', ['ps', '--index', '0', '--host', ps, '--port', '2222', ...job]],
      ['chief', 'ps', ['chief', '--host', ps, '--port', '2223', '--ps', `${ps}:2222`, '--workers', String(workers), ...training, '--out', out, ...job]],
      ...Array.from({ length: workers }, (_, i): [Role, string, string[]] => ['worker', `w${i}`, ['worker', '--chief', `${ps}:2223`, '--index', String(i), '--backend', 'wasm', ...job]]),
    ];
    const last = new Map<number, { role: Role; ms: number }>();
    const children = roles.map(([role, host, args]) => {
      const child = lab.spawn(host, process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      const exited = new Promise<void>((resolve, reject) =>
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${role} (${epochs} epochs, ${push}/${pull}) exited ${code}: ${stderr}`)))),
      );
      return { role, child, exited };
    });
    const sample = () => {
      for (const { role, child } of children) {
        const ms = child.pid !== undefined ? processCpu(child.pid) : undefined;
        if (ms !== undefined && child.pid !== undefined) last.set(child.pid, { role, ms });
      }
    };
    const timer = setInterval(sample, 100);
    try {
      await Promise.all(children.map((c) => c.exited));
    } finally {
      clearInterval(timer);
    }
    const ms: Record<Role, number> = { ps: 0, chief: 0, worker: 0 };
    for (const c of last.values()) ms[c.role] += c.ms;
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { steps: number; workerStats: Array<{ seconds: number }> };
    return { steps: report.steps, ms, seconds: Math.max(...report.workerStats.map((w) => w.seconds)) };
  } finally {
    lab.close();
    rmSync(out, { recursive: true, force: true });
  }
}

/** One local job; the CPU each role had used at its last sample (a role's exit leaves at most 100 ms unseen). */
async function job(bin: string, epochs: number, push: string, pull: string): Promise<Run> {
  const out = mkdtempSync(join(tmpdir(), 'tamp-role-cpu-'));
  try {
    const args = ['train', '--local', '--ps', '1', '--workers', '1', '--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', String(epochs), '--lr', '0.001', '--backend', 'wasm', '--seed', '1', '--mode', 'async', '--wire-push', push, '--wire-pull', pull, '--out', out, '--overwrite', '--json'];
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const seen = new Map<number, { role: Role; ms: number }>();
    const sample = () => {
      if (child.pid !== undefined) for (const [pid, c] of childCpu(child.pid)) seen.set(pid, c);
    };
    const timer = setInterval(sample, 100);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearInterval(timer);
    if (code !== 0) throw new Error(`tamp train (${epochs} epochs, ${push}/${pull}) exited ${code}: ${stderr}`);
    const ms: Record<Role, number> = { ps: 0, chief: 0, worker: 0 };
    for (const c of seen.values()) ms[c.role] += c.ms;
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { steps: number; workerStats: Array<{ seconds: number }> };
    return { steps: report.steps, ms, seconds: Math.max(...report.workerStats.map((w) => w.seconds)) };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const rows: Array<Array<string | number>> = [];
// Loopback: one setup (one worker, `tamp train --local`); the lab: one per worker count.
for (const { push, pull } of PAIRS) {
  for (const workers of LAB ?? [undefined]) {
    const perStep = TREES.map((): Record<Role, number[]> => ({ ps: [], chief: [], worker: [] }));
    // The lab: the cores the job kept busy over the added epochs, every role's CPU over the added training seconds.
    const cores = TREES.map((): number[] => []);
    const run = (bin: string, epochs: number) => (workers === undefined ? job(bin, epochs, push, pull) : labJob(bin, epochs, push, pull, workers));
    const setup = `${push} / ${pull}${workers !== undefined ? `, ${workers} worker${workers > 1 ? 's' : ''}` : ''}`;
    for (let round = 0; round < ROUNDS; round++) {
      // The trees take turns going first (ABBA), so a drift in the machine's load within a round favours neither.
      const order = round % 2 === 0 ? [...TREES.entries()] : [...TREES.entries()].reverse();
      for (const [t, tree] of order) {
        const short = await run(tree.bin, 1);
        const long = await run(tree.bin, EPOCHS);
        const steps = long.steps - short.steps;
        const mine = perStep[t] as Record<Role, number[]>;
        for (const role of ROLES) mine[role].push((long.ms[role] - short.ms[role]) / steps);
        const busy = ROLES.reduce((a, r) => a + long.ms[r] - short.ms[r], 0) / 1000 / (long.seconds - short.seconds);
        cores[t]?.push(busy);
        process.stderr.write(`${tree.label}, ${setup}, round ${round + 1}: ${ROLES.map((r) => `${r} ${fmt(mine[r].at(-1) as number, 1)}`).join(', ')} ms a step (${steps} steps apart); ${fmt(busy, 2)} cores busy\n`);
      }
    }
    for (const [t, tree] of TREES.entries()) {
      const mine = perStep[t] as Record<Role, number[]>;
      const m = (r: Role) => median(mine[r]);
      const spread = (r: Role) => `${fmt(Math.min(...mine[r]), 1)}-${fmt(Math.max(...mine[r]), 1)}`;
      const busy = cores[t] ?? [];
      rows.push([setup, tree.label, ...ROLES.map((r) => `${fmt(m(r), 1)} (${spread(r)})`), fmt(ROLES.reduce((a, r) => a + m(r), 0), 1), ...(LAB !== undefined ? [`${fmt(median(busy), 2)} (${fmt(Math.min(...busy), 2)}-${fmt(Math.max(...busy), 2)})`] : [])]);
    }
    if (TREES.length === 2) {
      // Paired by round: each round ran both trees back to back, so the difference cancels what the round's load added to both.
      const [mine, base] = perStep as [Record<Role, number[]>, Record<Role, number[]>];
      const diff = (r: Role) => mine[r].map((x, i) => x - (base[r][i] as number));
      const cell = (d: number[]) => {
        const mean = d.reduce((a, b) => a + b, 0) / d.length;
        const sd = d.length > 1 ? Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / (d.length - 1)) : NaN;
        return `${mean >= 0 ? '+' : '−'}${fmt(Math.abs(mean), 1)} ± ${fmt(sd / Math.sqrt(d.length), 1)}`;
      };
      const sums = mine.ps.map((_, i) => ROLES.reduce((a, r) => a + (mine[r][i] as number) - (base[r][i] as number), 0));
      rows.push([setup, 'difference, paired by round (mean ± standard error)', ...ROLES.map((r) => cell(diff(r))), cell(sums), ...(LAB !== undefined ? [''] : [])]);
    }
  }
}

const command = `pnpm bench:role-cpu${arg('--codecs') !== undefined ? ` --codecs '${arg('--codecs')}'` : ''}${arg('--rounds') !== undefined ? ` --rounds ${ROUNDS}` : ''}${LAB !== undefined ? ` --lab ${LAB.join(',')}` : ''}${arg('--mbit') !== undefined ? ` --mbit ${MBIT}` : ''}${BASELINE !== undefined ? ' --baseline <worktree>' : ''}`;
const where =
  LAB === undefined
    ? '`tamp train --local`, LeNet-300-100 on MNIST, one parameter server and one worker, async, loopback, WASM backend.'
    : `The network lab (test/helpers/netlab.ts), as \`pnpm bench:wire\`'s scaling rows: the parameter server and the chief on a 1 Gbit/s host, each worker on its own host and ${MBIT} Mbit/s link; LeNet-300-100 on MNIST, batch 64, async, WASM backend. The worker column is all workers' CPU over all their steps (one worker's per step of its own; the parameter server's and the chief's are per step of any worker). Cores busy: every role's CPU over the added epochs' training time (the longest worker's), the median (range); the lab's kernel work on packets is counted only where it lands in a role's system time.`;
const markdown = `## CPU per step by role (\`${command}\`)

${machine()}. ${where} Each role's CPU (utime + stime of all its threads, from /proc) in a job of ${EPOCHS} epochs minus one of 1 epoch, over the difference in steps: milliseconds of CPU per step, the median of ${ROUNDS} pairs of jobs (the range in brackets). The chief's figure includes ${EPOCHS - 1} epoch evaluations spread over the steps. Compare rows of one run: other load on the machine moves every figure.${BASELINE !== undefined ? ' With a baseline, its jobs alternate with this checkout\'s in every round, the two taking turns to go first, so a busy spell falls on both; the difference row pairs them by round.' : ''}

${markdownTable([LAB !== undefined ? 'codecs (push / pull), workers' : 'codecs (push / pull)', 'code', 'parameter server ms', 'chief ms', 'worker ms (both threads)', 'sum ms', ...(LAB !== undefined ? [`cores busy (of ${cpus().length})`] : [])], rows)}
`;
if (write) writeSection(LAB !== undefined ? 'role-cpu:lab' : 'role-cpu', markdown);
else process.stdout.write(markdown);
