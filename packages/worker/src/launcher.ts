/**
 * `tamp train --local`: a whole cluster as child processes on loopback.
 * Each role runs `tamp ps|chief|worker ...` in its own process (so its
 * command line names its role), binds port 0 and reports the port over IPC;
 * the launcher starts the parameter servers, then the chief, then the
 * workers, shows the chief's progress, and returns the chief's report.
 *
 * It supervises every role like a container restart policy: one that
 * crashes (a worker or parameter server: any non-zero exit, SIGKILL
 * included; the chief: killed by a signal) is started again, up to
 * `maxRestarts` times each. A worker comes back under the same client id,
 * so it takes its own slot back and continues at the cluster's step; a
 * parameter server comes back on its own port without its state, and the
 * chief restores it from the newest checkpoint (shard-recovery.ts); the
 * chief comes back on its own port and takes the running job over from the
 * parameter servers (chief-rejoin.ts), the workers training on meanwhile.
 * A chief that exits with a code ended the job itself (done, or failed with
 * the servers stopped): not restarted. Every child exits when the launcher
 * dies (parent-watch.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterError, errorMessage } from '@tamp/core';
import { CHIEF_SECRET_ENV, CHIEF_SECRET_FILE_ENV, INSECURE, chiefSecretFromEnv, type RpcSecurity, WORKER_KEY_ENV, newSecret, securityArgs } from '@tamp/rpc';
import type { ChiefReport } from './report.js';
import { CoordinatorClient } from './coordinator-client.js';
import { LAUNCHER_PID_ENV } from './parent-watch.js';
import { CLIENT_ID_ENV } from './worker.js';

export interface LocalClusterOptions {
  /** How to run `tamp`: e.g. [process.execPath, '/path/to/bin/tamp.mjs']. */
  readonly tamp: readonly string[];
  readonly jobId: string;
  readonly ps: number;
  readonly workers: number;
  /** Training flags for the chief (model, dataset, epochs, ..., --out). */
  readonly chiefArgs: readonly string[];
  /** Flags for every worker (backend, ...). */
  readonly workerArgs: readonly string[];
  /** Extra flags for worker i, after the common ones (e.g. a different backend for one worker). */
  readonly workerArgsByIndex?: ReadonlyArray<readonly string[]>;
  /** Extra environment for worker i (e.g. a test hook such as TAMP_TEST_STEP_DELAY_MS for one worker). */
  readonly workerEnvByIndex?: ReadonlyArray<NodeJS.ProcessEnv>;
  readonly out: string;
  /** Every child gets these security flags; the launcher's own status channel uses them too. */
  readonly security?: RpcSecurity;
  /** Restart a crashed role (worker, parameter server, or the chief killed by a signal) at most this many times each (default 3; 0: never). */
  readonly maxRestarts?: number;
  /** Give each role `--metrics-port`: parameter server i BASE+i, the chief BASE+P, worker i BASE+P+1+i (default: no metrics). */
  readonly metricsPortBase?: number;
  /** Forward every child's log lines (prefixed with its role). */
  readonly verbose?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly log?: (message: string) => void;
  readonly onProgress?: (status: { globalStep: number; totalSteps: number; epoch: number; epochs: number; samplesPerSecond: number; loss: number; validationAccuracy: number; validationMAP: number }) => void;
  /** Called with each child as it starts (tests kill some). */
  readonly onSpawn?: (role: string, child: ChildProcess) => void;
}

interface Child {
  readonly role: string;
  readonly process: ChildProcess;
  readonly tail: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  port?: number;
}

const TAIL_LINES = 40;
const DEFAULT_MAX_RESTARTS = 3;
/**
 * A child's log line as a person reads it: roles write pino JSON lines when
 * their stderr is not a terminal (a launcher's pipe), shown here by message.
 */
function humanLine(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const v = JSON.parse(line) as { msg?: unknown };
    return typeof v.msg === 'string' ? v.msg : line;
  } catch {
    return line;
  }
}

/** Child log lines the launcher shows without --verbose: warnings, where a resume starts, exits, and each fault the chief finds and recovers from. */
const ALWAYS_SHOWN = /\bwarning:|\bresuming from\b|\bexiting\b|\brecovery: |\bworker-\d+ lost: /i;

export async function launchLocalCluster(options: LocalClusterOptions): Promise<ChiefReport> {
  const log = options.log ?? (() => {});
  const children: Child[] = [];
  let failure: ClusterError | undefined;
  let finishing = false;
  let rejectFailure: (e: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    rejectFailure = reject;
  });
  failed.catch(() => undefined);
  // The last chief's exit (a crashed one is restarted: the job ends when a chief exits by itself).
  let resolveChiefExit: (r: { code: number | null; signal: NodeJS.Signals | null }) => void = () => {};
  const chiefExited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    resolveChiefExit = resolve;
  });

  const maxRestarts = options.maxRestarts ?? DEFAULT_MAX_RESTARTS;
  const base = options.metricsPortBase;
  const metricsPort = (offset: number): string[] => (base === undefined ? [] : ['--metrics-port', String(base + offset)]);
  const restarts = new Map<string, number>();
  // Per run: pinned on the parameter servers before the chief's first Assign, so no one can claim the job first (authority.ts in @tamp/parameter-server).
  // A secret this process was given (TAMP_CHIEF_SECRET or TAMP_CHIEF_SECRET_FILE) is the job's; otherwise a fresh one.
  const chiefSecret = chiefSecretFromEnv() ?? newSecret();
  const start = (role: string, args: readonly string[], waitForPort: boolean, env: NodeJS.ProcessEnv = {}): Promise<Child> => {
    const [cmd, ...base] = options.tamp as [string, ...string[]];
    const proc = spawn(cmd, [...base, ...args, ...securityArgs(options.security ?? INSECURE)], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // The job's chief secret goes to the parameter servers and the chief alone (workers get slot tokens at Join).
      // Passed by value, so the file variable is cleared (giving both is an error).
      env: {
        ...process.env,
        ...options.env,
        ...env,
        [LAUNCHER_PID_ENV]: String(process.pid),
        [CHIEF_SECRET_FILE_ENV]: '',
        [CHIEF_SECRET_ENV]: role.startsWith('worker') ? '' : chiefSecret,
      },
    });
    const tail: string[] = [];
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const child: Child = { role, process: proc, tail, exited };
    children.push(child);
    options.onSpawn?.(role, proc);
    const onLine = (raw: string) => {
      if (raw.trim() === '') return;
      const line = humanLine(raw);
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      // Warnings (a damaged checkpoint skipped) and where a resume starts are shown even without --verbose.
      if (options.verbose === true || ALWAYS_SHOWN.test(line)) log(`[${role}] ${line}`);
    };
    let buffered = '';
    proc.stderr?.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      lines.forEach(onLine);
    });
    proc.stdout?.on('data', () => {});
    void exited.then(({ code, signal }) => {
      if (buffered !== '') onLine(buffered);
      const why = `${role} exited with ${signal !== null ? `signal ${signal}` : `code ${code}`}`;
      const done = restarts.get(role) ?? 0;
      // A chief killed by a signal (a crash, SIGKILL, the OOM killer) comes back on its port and takes the running
      // job over (chief-rejoin.ts). One that exited with a code decided so itself (the job failed, the servers are stopped).
      if (role === 'chief' && signal !== null && !finishing && done < maxRestarts && child.port !== undefined) {
        restarts.set(role, done + 1);
        log(`${why}; restarting it on port ${child.port} (restart ${done + 1} of ${maxRestarts}); it takes the running job over from the parameter servers`);
        const again = args.map((a, i) => (args[i - 1] === '--port' ? String(child.port) : a));
        start(role, again, true, env).catch((error: unknown) => {
          failure ??= new ClusterError('JOB_FAILED', `could not restart the chief: ${errorMessage(error)}`);
          rejectFailure(failure);
        });
        return;
      }
      if (role === 'chief') resolveChiefExit({ code, signal });
      if (finishing && code === 0) return;
      const bad = code !== 0;
      if (!bad) return;
      if (role.startsWith('ps') && !finishing && done < maxRestarts && child.port !== undefined) {
        restarts.set(role, done + 1);
        log(`${why}; restarting it on port ${child.port} (restart ${done + 1} of ${maxRestarts}); the chief fails its shards over to their backups (--ps-replicas 1) or restores them from the newest checkpoint`);
        // The same port (the chief and the workers know it); it comes back unassigned and the chief notices.
        const again = args.map((a, i) => (args[i - 1] === '--port' ? String(child.port) : a));
        start(role, again, true, env).catch((error: unknown) => {
          failure ??= new ClusterError('JOB_FAILED', `could not restart ${role}: ${errorMessage(error)}`);
          rejectFailure(failure);
        });
        return;
      }
      if (role.startsWith('worker')) {
        if (!finishing && done < maxRestarts) {
          restarts.set(role, done + 1);
          log(`${why}; restarting it (restart ${done + 1} of ${maxRestarts})`);
          start(role, args, false, env).catch((error: unknown) => log(`could not restart ${role}: ${errorMessage(error)}`));
          return;
        }
        // A lost worker is the chief's business (async continues; sync drops it from the barrier).
        log(`${why}${maxRestarts > 0 ? ` (restarted ${done} times already)` : ''}; the chief carries on without it`);
        return;
      }
      failure ??= new ClusterError('JOB_FAILED', `${why}:\n${tail.slice(-12).map((l) => `  ${l}`).join('\n')}`);
      rejectFailure(failure);
    });
    return new Promise((resolve, reject) => {
      proc.on('message', (m: { type?: string; port?: number }) => {
        if (m.type === 'listening' && typeof m.port === 'number') {
          child.port = m.port;
          resolve(child);
        }
      });
      void exited.then(({ code }) => reject(new ClusterError('JOB_FAILED', `${role} exited (code ${code}) before it was ready:\n${tail.slice(-12).map((l) => `  ${l}`).join('\n')}`)));
      if (!waitForPort) resolve(child);
    });
  };

  const killAll = (signal: NodeJS.Signals) => {
    for (const c of children) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill(signal);
  };
  const onSignal = () => {
    killAll('SIGTERM');
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let poller: NodeJS.Timeout | undefined;
  let coordinator: CoordinatorClient | undefined;
  try {
    const ps = await Promise.race([Promise.all(Array.from({ length: options.ps }, (_, i) => start(`ps-${i}`, ['ps', '--index', String(i), '--port', '0', '--job-id', options.jobId, ...metricsPort(i)], true))), failed]);
    const psList = ps.map((c) => `127.0.0.1:${c.port}`).join(',');
    log(`${options.ps} parameter server(s) on ${psList}`);
    const chief = await Promise.race([
      start('chief', ['chief', '--ps', psList, '--workers', String(options.workers), '--port', '0', '--job-id', options.jobId, ...metricsPort(options.ps), ...options.chiefArgs], true),
      failed,
    ]);
    const chiefAddress = `127.0.0.1:${chief.port}`;
    log(`chief on ${chiefAddress}; starting ${options.workers} worker(s)`);
    for (let i = 0; i < options.workers; i++) {
      const extra = options.workerArgsByIndex?.[i] ?? [];
      await start(`worker-${i}`, ['worker', '--chief', chiefAddress, '--index', String(i), '--job-id', options.jobId, ...metricsPort(options.ps + 1 + i), ...options.workerArgs, ...extra], false, {
        // One client id per slot, kept across restarts: a restarted worker takes its own slot back.
        [CLIENT_ID_ENV]: `${options.jobId}-worker-${i}`,
        // Kept across restarts, so a restarted worker takes its slot back at once (Membership.join).
        [WORKER_KEY_ENV]: newSecret(),
        ...options.workerEnvByIndex?.[i],
      });
    }
    coordinator = new CoordinatorClient(chiefAddress, options.jobId, 5_000, { security: options.security ?? INSECURE });
    const c = coordinator;
    poller = setInterval(() => {
      c.jobStatus().then(
        (s) =>
          options.onProgress?.({
            globalStep: Number(s.globalStep),
            totalSteps: Number(s.totalSteps),
            epoch: s.epoch,
            epochs: s.epochs,
            samplesPerSecond: s.samplesPerSecond,
            loss: s.loss,
            validationAccuracy: s.validationAccuracy,
            validationMAP: s.validationMap,
          }),
        () => undefined,
      );
    }, 500);
    const result = await Promise.race([chiefExited, failed]);
    finishing = true;
    if (result.code !== 0) throw failure ?? new ClusterError('JOB_FAILED', `chief exited with code ${result.code}`);
    // Workers leave and parameter servers stop on their own once the chief is done.
    const grace = setTimeout(() => killAll('SIGKILL'), 15_000);
    await Promise.all(children.map((c) => c.exited));
    clearTimeout(grace);
    try {
      return JSON.parse(readFileSync(join(options.out, 'report.json'), 'utf8')) as ChiefReport;
    } catch (error) {
      throw new ClusterError('JOB_FAILED', `the chief finished but left no readable report.json in ${options.out}: ${errorMessage(error)}`);
    }
  } finally {
    if (poller !== undefined) clearInterval(poller);
    coordinator?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    killAll('SIGKILL');
  }
}
