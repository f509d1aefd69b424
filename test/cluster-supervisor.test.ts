/**
 * The local supervisor (`tamp train --local`): a worker child killed with
 * SIGKILL is restarted and the job completes; the launcher killed with
 * SIGKILL leaves no child running (each role exits with its launcher).
 */
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { useTestLoad } from './helpers/load.js';
import { freePorts } from './helpers/ports.js';
import { REPO, TAMP_BIN } from './helpers/tamp.js';

useTestLoad(); // TAMP_TEST_LOAD=N: run under N busy processes (test/helpers/load.ts)

const dir = mkdtempSync(join(tmpdir(), 'tamp-supervisor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const JOB = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '3840', '--mode', 'sync', '--heartbeat-timeout', '2', '--checkpoint-every', '3', '--backend', 'wasm'];

/** The children of `ppid` with their command lines (from ps). */
function children(ppid: number): Array<{ pid: number; args: string }> {
  let text = '';
  try {
    text = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(ppid)], { encoding: 'utf8' });
  } catch {
    return []; // ps exits 1 when there is none
  }
  return text
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(.*)$/.exec(l))
    .flatMap((m) => (m === null ? [] : [{ pid: Number(m[1]), args: m[2] as string }]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function launch(args: string[]): { child: ChildProcessWithoutNullStreams; stderr: () => string; done: Promise<number | null> } {
  return tamp(['train', '--local', ...args]);
}

function tamp(args: string[]): { child: ChildProcessWithoutNullStreams; stderr: () => string; done: Promise<number | null> } {
  const child = spawn(process.execPath, [TAMP_BIN, ...args], { cwd: REPO, env: process.env });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', () => {});
  const timer = setTimeout(() => child.kill('SIGKILL'), 280_000);
  const done = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    }),
  );
  return { child, stderr: () => stderr, done };
}

describe('local supervisor', () => {
  it('restarts a worker killed with SIGKILL: the job completes, exit 0, and the log says it restarted it', async () => {
    const out = join(dir, 'restart');
    const run = launch([...JOB, '--out', out, '--max-restarts', '2']);
    // Kill worker 1 once training is under way (the first checkpoint is at step 3).
    for (let i = 0; i < 2400 && !existsSync(join(out, 'checkpoints', 'step-000000003', 'manifest.json')); i++) await sleep(50);
    const victim = children(run.child.pid as number).find((c) => / worker .*--index 1\b/.test(c.args));
    expect(victim, run.stderr()).toBeDefined();
    process.kill(victim?.pid as number, 'SIGKILL');
    const code = await run.done;
    expect(code, run.stderr()).toBe(0);
    expect(run.stderr()).toMatch(/worker-1 exited with signal SIGKILL; restarting it \(restart 1 of 2\)/);
    // The chief's word on the fault is shown without --verbose. No sync step passes step 3 until worker 1 is
    // dropped (its closed connection: "lost:") or its restart is back in its slot first ("recovery:").
    expect(run.stderr()).toMatch(/\[chief\] .*(worker-1 lost: |recovery: worker 1 \()/);
  });

  it('a launcher killed with SIGKILL leaves no child running', async () => {
    const out = join(dir, 'orphans');
    const run = launch([...JOB, '--out', out]);
    for (let i = 0; i < 2400 && !/starting 2 worker\(s\)/.test(run.stderr()); i++) await sleep(50);
    expect(run.stderr()).toMatch(/starting 2 worker\(s\)/);
    // That line comes before the workers are spawned: wait (bounded) until all four roles run.
    const roleNames = () => children(run.child.pid as number).map((c) => / (ps|chief|worker) /.exec(c.args)?.[1]);
    for (let i = 0; i < 2400 && roleNames().filter((r) => r !== undefined).length < 4; i++) await sleep(50);
    const roles = children(run.child.pid as number);
    expect(roles.map((c) => / (ps|chief|worker) /.exec(c.args)?.[1]).sort(), JSON.stringify(roles)).toEqual(['chief', 'ps', 'worker', 'worker']);
    run.child.kill('SIGKILL');
    await run.done;
    // Bounded wait: each role notices within a second or so (its IPC channel closes, its parent pid changes).
    for (let i = 0; i < 600 && roles.some((c) => alive(c.pid)); i++) await sleep(50);
    const left = roles.filter((c) => alive(c.pid));
    for (const c of left) process.kill(c.pid, 'SIGKILL'); // do not leave them behind when the test fails
    expect(left).toEqual([]);
  });

  it('a worker whose chief is killed exits non-zero, naming the chief, once --peer-timeout has passed', async () => {
    const [psPort, chiefPort] = await freePorts(2);
    const chiefAddress = `127.0.0.1:${chiefPort}`;
    const job = ['--job-id', 'peer-timeout'];
    const ps = tamp(['ps', '--index', '0', '--port', String(psPort), ...job]);
    // Two workers, one started: it waits at the first step's barrier for the other, so only the peer timeout can end it.
    const chief = tamp(['chief', '--ps', `127.0.0.1:${psPort}`, '--workers', '2', '--port', String(chiefPort), ...job, ...JOB, '--out', join(dir, 'peer')]);
    // The worker starts once the chief listens, so a slow start of the chief (a loaded machine) cannot use up the worker's join timeout.
    for (let i = 0; i < 2400 && !/listening on/.test(chief.stderr()); i++) await sleep(50);
    const worker = tamp(['worker', '--chief', chiefAddress, '--index', '0', '--backend', 'wasm', '--peer-timeout', '3', ...job]);
    try {
      expect(chief.stderr()).toMatch(/listening on/);
      // Joined on the worker's side too: a chief killed after recording the Join but before its answer
      // reached the worker leaves a worker that is still joining, which the join timeout ends instead.
      for (let i = 0; i < 2400 && !/worker-0 of 2: /.test(worker.stderr()); i++) await sleep(50);
      expect(chief.stderr()).toMatch(/worker-0 \(.*\) joined/);
      expect(worker.stderr()).toMatch(/worker-0 of 2: /);
      chief.child.kill('SIGKILL');
      const code = await worker.done;
      expect(code, worker.stderr()).toBe(1);
      expect(worker.stderr()).toContain(`the chief at ${chiefAddress} has not answered for`);
      expect(worker.stderr()).toMatch(/past the peer timeout of 3 s/);
    } finally {
      for (const p of [ps, chief, worker]) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await Promise.all([ps.done, chief.done, worker.done]);
    }
  });
});

describe('false suspicion', () => {
  for (const mode of ['sync', 'async', 'ssp'] as const) {
    it(`${mode}: a worker wrongly declared lost (stopped with SIGSTOP past the timeout) comes back by itself and the job completes`, async () => {
      const out = join(dir, `suspect-${mode}`);
      const flags = JOB.map((a) => (a === 'sync' ? mode : a === '2' ? '1' : a)); // this mode, --heartbeat-timeout 1
      const run = launch([...flags, '--max-restarts', '0', '--verbose', '--out', out]);
      for (let i = 0; i < 2400 && !existsSync(join(out, 'checkpoints', 'step-000000003', 'manifest.json')); i++) await sleep(50);
      const victim = children(run.child.pid as number).find((c) => / worker .*--index 1\b/.test(c.args));
      expect(victim, run.stderr()).toBeDefined();
      const pid = victim?.pid as number;
      // A process that does not run is what a long GC pause or a starved machine looks like from the chief.
      process.kill(pid, 'SIGSTOP');
      try {
        for (let i = 0; i < 1200 && !/\[chief\] worker-1 lost: no heartbeat/.test(run.stderr()); i++) await sleep(50);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      expect(run.stderr()).toMatch(/\[chief\] worker-1 lost: no heartbeat/);
      const code = await run.done;
      expect(code, run.stderr()).toBe(0);
      expect(run.stderr()).toMatch(/\[chief\] worker-1 is back/);
      expect(run.stderr()).not.toMatch(/restarting it/);
    });
  }
});
