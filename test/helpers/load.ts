/**
 * TAMP_TEST_LOAD=N: run a test file while N CPU-bound busy processes compete
 * for the cores (as a busy CI machine or a laptop training another job
 * would), so the cluster tests show they survive load: slow heartbeats,
 * slow process starts, a worker wrongly suspected.
 *
 * A file calls useTestLoad() at its top level; the processes start before
 * its first test and are ended by pid after its last, whatever happened.
 * Each also ends itself once its parent (the test process) is gone, so a
 * killed test run leaves no busy loop behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll } from 'vitest';

/** The number of busy processes TAMP_TEST_LOAD asks for (0 when unset). */
export function testLoadFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TAMP_TEST_LOAD;
  if (raw === undefined || raw === '') return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new Error(`TAMP_TEST_LOAD must be a whole number of busy processes from 0 to 64, got "${raw}"`);
  return n;
}

// A busy loop that checks, every few million iterations, whether its parent is still there
// (a busy loop never runs timers or IPC events, so it cannot wait for 'disconnect').
const BUSY = `const parent = Number(process.argv[1]); for (let i = 1; ; i++) if ((i & 0x3fffff) === 0 && process.ppid !== parent) process.exit(0);`;

/** Start n busy processes; returns a function that ends them (by pid) and waits for them to exit. */
export function startLoad(n: number): { pids: number[]; stop: () => Promise<void> } {
  const children: ChildProcess[] = Array.from({ length: n }, () => spawn(process.execPath, ['-e', BUSY, String(process.pid)], { stdio: 'ignore' }));
  const exited = children.map((c) => new Promise<void>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve()))));
  const kill = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
  };
  process.once('exit', kill);
  return {
    pids: children.flatMap((c) => (c.pid !== undefined ? [c.pid] : [])),
    stop: async () => {
      kill();
      process.off('exit', kill);
      await Promise.all(exited);
    },
  };
}

/** Run this test file under TAMP_TEST_LOAD busy processes (nothing when it is unset). */
export function useTestLoad(): void {
  const n = testLoadFromEnv();
  if (n === 0) return;
  let load: ReturnType<typeof startLoad> | undefined;
  beforeAll(() => {
    load = startLoad(n);
    console.error(`TAMP_TEST_LOAD: ${n} busy process(es) (pids ${load.pids.join(', ')}) while this file runs`);
  });
  afterAll(async () => {
    await load?.stop();
  });
}
