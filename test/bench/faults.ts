/**
 * pnpm bench:faults: what each fault costs a LeNet-5 job under `tamp train
 * --local` (sync, 2 parameter servers, 2 workers, a checkpoint every 20
 * steps), measured from the SIGKILL by scraping the chief's /metrics every
 * 50 ms: how long until the chief counts a killed worker lost (and until the
 * restarted one is back), how long until a killed parameter server is
 * restored (the chief's recovery done, training resumes), and each
 * disturbed run's test accuracy against an undisturbed one with the same
 * seeds. Then a seeded chaos run: a random role (chief, parameter server,
 * worker) killed every 15 s for two minutes of a longer job, against its undisturbed twin.
 * Rewrites BENCHMARKS.md's "faults" section.
 *
 *   pnpm bench:faults [--no-chaos | --only-chaos] [--no-write]
 *   (--only-chaos writes its own section, faults:chaos)
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Random } from '@tamp/core';
import { type ChiefReport, launchLocalCluster } from '@tamp/worker';
import { freePortRange } from '../helpers/ports.js';
import { TAMP_BIN } from '../helpers/tamp.js';
import { fmt, load, machine, markdownTable, writeSection } from './report.js';

const work = mkdtempSync(join(tmpdir(), 'tamp-bench-faults-'));
const PS = 2;
const WORKERS = 2;
const JOB = ['--model', 'lenet-5', '--dataset', 'mnist', '--batch-size', '64', '--optimizer', 'adam', '--lr', '0.001', '--seed', '1', '--checkpoint-every', '20', '--mode', 'sync'];
const SHORT = ['--epochs', '2', '--epoch-size', '6400']; // 100 steps
const LONG = ['--epochs', '16', '--epoch-size', '6400']; // 800 steps: well over two minutes here, kills included
const KILL_AT_STEP = 30;

interface Run {
  report: ChiefReport;
  /** Seconds from the kill to the event, per fault. */
  events: Array<{ role: string; killedAtStep: number; detected?: number; back?: number; restarted?: number }>;
  seconds: number;
}

/** Gauges and counters of the chief's /metrics, by full series name (labels included). */
async function scrape(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** --only-chaos: the chaos run alone, in its own section (faults:chaos). */
const onlyChaos = process.argv.includes('--only-chaos');

/**
 * Poll the chief's metrics from the kill until `done` says the fault was
 * noticed and, with `back`, recovered from; seconds from the kill to each.
 */
async function watch(port: number, killedAt: number, detected: (m: Map<string, number>) => boolean, back: (m: Map<string, number>) => boolean, ended: () => boolean): Promise<{ detected?: number; back?: number }> {
  const r: { detected?: number; back?: number } = {};
  for (let i = 0; i < 1200 && !ended(); i++) {
    const m = await scrape(port).catch(() => undefined);
    const t = (performance.now() - killedAt) / 1000;
    if (m !== undefined) {
      if (r.detected === undefined && detected(m)) r.detected = t;
      if (r.detected !== undefined && back(m)) {
        r.back = t;
        return r;
      }
    }
    await sleep(50);
  }
  return r;
}

const lost = (m: Map<string, number>) => (m.get('tamp_chief_workers{state="lost"}') ?? 0) > 0;
// A parameter server's recoveries only: a worker's fault (a false suspicion meanwhile) is counted under role="worker".
const recoveries = (m: Map<string, number>) => [...m.entries()].filter(([k]) => k.startsWith('tamp_recoveries_total{role="ps"')).reduce((n, [, v]) => n + v, 0);

/**
 * One job; `plan(step)` names the role to kill when the chief reports that
 * global step (undefined: none), and how to tell it was noticed and recovered.
 */
async function run(name: string, size: readonly string[], plan?: (step: number, killed: number) => string | undefined, extra: readonly string[] = [], maxRestarts = 20): Promise<Run> {
  const out = join(work, name);
  const base = await freePortRange(PS + 1 + WORKERS);
  const chiefPort = base + PS;
  const children = new Map<string, ChildProcess>();
  const events: Run['events'] = [];
  const watching: Array<Promise<void>> = [];
  const killTimes = new Map<Run['events'][number], number>();
  let ended = false;
  const started = performance.now();
  const report = await launchLocalCluster({
    tamp: [process.execPath, TAMP_BIN],
    jobId: name,
    ps: PS,
    workers: WORKERS,
    chiefArgs: [...JOB, ...size, ...extra, '--out', out, '--backend', 'wasm'],
    workerArgs: ['--backend', 'wasm'],
    metricsPortBase: base,
    maxRestarts,
    out,
    onSpawn: (role, child) => {
      // A child of a role already killed is its restart: seconds from the kill.
      const pending = events.find((e) => e.role === role && e.restarted === undefined && killTimes.has(e));
      if (pending !== undefined) pending.restarted = (performance.now() - (killTimes.get(pending) as number)) / 1000;
      children.set(role, child);
    },
    onProgress: (s) => {
      if (plan === undefined) return;
      const role = plan(s.globalStep, events.length);
      const victim = role === undefined ? undefined : children.get(role);
      if (role === undefined || victim === undefined) return;
      const before = { recoveries: Number.NaN };
      const event: Run['events'][number] = { role, killedAtStep: s.globalStep };
      events.push(event);
      watching.push(
        (async () => {
          const m0 = await scrape(chiefPort).catch(() => new Map<string, number>());
          before.recoveries = recoveries(m0);
          const killedAt = performance.now();
          killTimes.set(event, killedAt);
          victim.kill('SIGKILL');
          // A worker: counted lost, then live again. A parameter server: its recovery counted. The chief: a new chief's metrics counting its takeover.
          const r = role.startsWith('worker')
            ? await watch(chiefPort, killedAt, lost, (m) => !lost(m), () => ended)
            : role === 'chief'
              ? await watch(chiefPort, killedAt, () => true, (m) => [...m.entries()].some(([k, v]) => k.startsWith('tamp_recoveries_total{role="chief"') && v > 0), () => ended)
              : await watch(chiefPort, killedAt, (m) => recoveries(m) > before.recoveries, () => true, () => ended);
          Object.assign(event, r);
        })(),
      );
    },
  });
  ended = true;
  await Promise.all(watching);
  return { report, events, seconds: (performance.now() - started) / 1000 };
}

const pct = (x: number | undefined) => (x === undefined ? 'none' : `${fmt(x * 100, 2)}%`);
const accuracy = (r: ChiefReport) => r.testAccuracy ?? Number.NaN;
const secs = (x: number | undefined) => (x === undefined ? 'not seen' : `${fmt(x, 2)} s`);

try {
  const loadBefore = load();
  const rows: Array<Array<string | number>> = [];
  const sections: string[] = [];
  if (!onlyChaos) {
    const reference = await run('reference', SHORT);
    rows.push(['none (reference)', '-', '-', pct(reference.report.testAccuracy), '-', '']);
    const accuracyGoal = (r: ChiefReport) => {
      const drop = (accuracy(reference.report) - accuracy(r)) * 100;
      return `${drop >= 0 ? '−' : '+'}${fmt(Math.abs(drop), 2)} points (goal within 0.5: ${Math.abs(drop) <= 0.5 ? 'met' : 'missed'})`;
    };

    // Heartbeats alone: a disconnect grace longer than the job leaves a closed connection to the failure detector (what a machine that vanished without closing its sockets costs).
    const HEARTBEATS_ONLY = ['--disconnect-grace', '100000'];
    const workerCases = [
      { label: 'default settings, restarted by the supervisor', extra: [], restarts: 20, name: 'worker-restarted' },
      { label: 'default settings, not restarted (`--max-restarts 0`)', extra: [], restarts: 0, name: 'worker-dead' },
      { label: 'heartbeats alone (`--disconnect-grace 100000`), default `--heartbeat-timeout` (10 s), not restarted', extra: HEARTBEATS_ONLY, restarts: 0, name: 'worker-dead-heartbeats' },
      { label: 'heartbeats alone, `--heartbeat-timeout 2`, restarted by the supervisor', extra: [...HEARTBEATS_ONLY, '--heartbeat-timeout', '2'], restarts: 20, name: 'worker-restarted-2' },
    ];
    for (const c of workerCases) {
      const worker = await run(c.name, SHORT, (step, killed) => (killed === 0 && step >= KILL_AT_STEP ? 'worker-1' : undefined), c.extra, c.restarts);
      const w = worker.events[0];
      const noticed =
        w?.detected !== undefined
          ? `${secs(w.detected)} to lost (goal under 3 s${c.extra.length === 0 ? ' with default settings' : ''}: ${w.detected < 3 ? 'met' : 'missed'})`
          : w?.restarted !== undefined
            ? 'never counted lost: restarted and back in its slot before the detector suspected it'
            : 'not seen';
      rows.push([
        `worker-1 SIGKILL at step ${w?.killedAtStep ?? '?'}, ${c.label}`,
        noticed,
        [w?.restarted !== undefined ? `restarted after ${secs(w.restarted)}` : 'not restarted', w?.back !== undefined ? `live again after ${secs(w.back)}` : ''].filter((x) => x !== '').join(', '),
        pct(worker.report.testAccuracy),
        accuracyGoal(worker.report),
        `job exit 0, ${worker.report.steps} steps`,
      ]);
    }

    for (const replicas of [false, true]) {
      const ps = await run(replicas ? 'ps-killed-replica' : 'ps-killed', SHORT, (step, killed) => (killed === 0 && step >= KILL_AT_STEP ? 'ps-1' : undefined), replicas ? ['--ps-replicas', '1'] : []);
      const p = ps.events[0];
      const rec = ps.report.recoveries.find((r) => r.role === 'ps');
      const goal = replicas ? 2 : 5;
      rows.push([
        `ps-1 SIGKILL at step ${p?.killedAtStep ?? '?'} ${replicas ? '(`--ps-replicas 1`: its shard fails over to the backup on ps-0)' : '(restarted, restored from the newest checkpoint)'}`,
        `${secs(p?.detected)} to ${replicas ? 'failed over' : 'restored'} and training resumed (goal under ${goal} s: ${p?.detected !== undefined && p.detected < goal ? 'met' : 'missed'})`,
        [p?.restarted !== undefined ? `restarted after ${secs(p.restarted)}` : '', rec === undefined ? 'no recovery recorded' : `chief: detected ${rec.detectedAfterSeconds === null ? '?' : fmt(rec.detectedAfterSeconds, 2)} s, resumed ${rec.resumedAfterSeconds === null ? '?' : fmt(rec.resumedAfterSeconds, 2)} s after it last saw it healthy`].filter((x) => x !== '').join('; '),
        pct(ps.report.testAccuracy),
        accuracyGoal(ps.report),
        rec === undefined ? '' : replicas ? `${rec.stepsLost} steps lost (goal 0: ${rec.stepsLost === 0 ? 'met' : 'missed'})` : `${rec.stepsLost} steps replayed from step ${rec.restoredStep}`,
      ]);
    }

    const chief = await run('chief-killed', SHORT, (step, killed) => (killed === 0 && step >= KILL_AT_STEP ? 'chief' : undefined));
    const ch = chief.events[0];
    const chiefRec = chief.report.recoveries.find((r) => r.role === 'chief');
    rows.push([
      `chief SIGKILL at step ${ch?.killedAtStep ?? '?'} (restarted, takes the running job over)`,
      chiefRec === undefined ? 'no recovery recorded' : `workers saw it silent after ${chiefRec.detectedAfterSeconds === null ? '?' : secs(chiefRec.detectedAfterSeconds)}`,
      [ch?.restarted !== undefined ? `restarted after ${secs(ch.restarted)}` : '', `${secs(ch?.back)} to the new chief's takeover counted`].filter((x) => x !== '').join('; '),
      pct(chief.report.testAccuracy),
      accuracyGoal(chief.report),
      chiefRec === undefined ? '' : `${chiefRec.stepsLost} steps lost; ${chief.report.steps} steps`,
    ]);
    sections.push(markdownTable(['fault', 'noticed', 'recovered', 'test accuracy', 'vs undisturbed', 'cost'], rows));
  }

  if (!process.argv.includes('--no-chaos')) {
    const calm = await run('chaos-reference', LONG);
    const random = new Random(2026);
    const roles = ['chief', ...Array.from({ length: PS }, (_, i) => `ps-${i}`), ...Array.from({ length: WORKERS }, (_, i) => `worker-${i}`)];
    let chaosStart: number | undefined;
    let nextKill = 0;
    const chaos = await run('chaos', LONG, (step) => {
      if (step < 10) return undefined;
      const now = performance.now();
      chaosStart ??= now;
      if (now - chaosStart > 120_000 || now < nextKill) return undefined;
      nextKill = now + 15_000;
      return roles[Math.floor(random.next() * roles.length)];
    });
    const drop = (accuracy(calm.report) - accuracy(chaos.report)) * 100;
    const kills = chaos.events.map((e) => `${e.role} at step ${e.killedAtStep}`).join(', ');
    sections.push(`### Chaos: a random role (chief, parameter server or worker) killed every 15 s for two minutes (seed 2026)

${markdownTable(
  ['run', 'test accuracy', 'seconds', 'kills', 'recoveries recorded', 'lost workers'],
  [
    ['undisturbed', pct(calm.report.testAccuracy), fmt(calm.seconds, 0), '0', String(calm.report.recoveries.length), String(calm.report.lostWorkers)],
    ['chaos', pct(chaos.report.testAccuracy), fmt(chaos.seconds, 0), `${chaos.events.length}: ${kills}`, String(chaos.report.recoveries.length), String(chaos.report.lostWorkers)],
  ],
)}

The chaos run finished (exit 0) with test accuracy ${drop >= 0 ? '−' : '+'}${fmt(Math.abs(drop), 2)} points against the undisturbed run (goal within 1: ${Math.abs(drop) <= 1 ? 'met' : 'missed'}).`);
  }

  const markdown = `## ${onlyChaos ? 'Chaos: faults survived (`pnpm bench:faults --only-chaos`)' : 'Faults survived, measured from the kill (`pnpm bench:faults`)'}

${machine()} (at the start: ${loadBefore}). \`tamp train --local --ps ${PS} --workers ${WORKERS} ${[...JOB, ...SHORT].join(' ')} --backend wasm\` (chaos: ${LONG.join(' ')}), the supervisor restarting killed roles (\`--max-restarts 20\`). Each fault is a SIGKILL once the chief reports the step named; "noticed" and "recovered" are seconds from the kill to the chief's /metrics showing it (scraped every 50 ms): a worker counted lost, then live again; a parameter server's recovery counted in \`tamp_recoveries_total\` (its state restored, the job's restore generation begun, workers resuming). A worker is found lost two ways (ARCHITECTURE.md, "Faults"): its connection to the chief closed (the process died) and it neither reconnected nor heartbeat within \`--disconnect-grace\` (default 1 s); or, for a worker that stalls or whose machine vanishes without closing its sockets, the phi-accrual failure detector over its heartbeats (every second), never before \`--heartbeat-timeout\` (default 10 s) of silence and always by three times that. The "heartbeats alone" rows turn the first off to show the second.

${sections.join('\n\n')}`;
  process.stdout.write(`${markdown}\n`);
  if (!process.argv.includes('--no-write')) writeSection(onlyChaos ? 'faults:chaos' : 'faults', markdown);
} finally {
  rmSync(work, { recursive: true, force: true });
}
