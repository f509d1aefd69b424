import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RpcSecurity } from '@tamp/rpc';
import { writeClusterCerts } from '@tamp/rpc/certs';
import { type BackendRequest, UsageError } from '@tamp/core';
import { checkOutputFolder, trainSingleProcess } from '@tamp/core/node';
import { checkPsReplicas, launchLocalCluster, newestManifest, parseTfConfig, refuseOtherJobsResults } from '@tamp/worker';
import { defineCommand } from '../command.js';
import type { Output } from '../output.js';
import { clusterProgress } from './cluster-progress.js';
import { logLevelOption } from './role-log.js';
import { trainSummary } from './summary.js';
import { runChiefRole, runPsRole, runWorkerRole } from './roles.js';
import {
  CHIEF_FLAGS,
  backendOption,
  dryRunOption,
  dryRunResult,
  jobIdOption,
  requireGpuOption,
  securityFrom,
  securityOptions,
  metricsOptions,
  trainOptions,
  trainingSettings,
} from './shared-options.js';
import type { MetricsArgs, SecurityArgs } from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

export const TAMP_BIN = fileURLToPath(new URL('../../bin/tamp.mjs', import.meta.url));

const options = {
  ...trainOptions,
  local: { type: 'boolean', description: 'run a whole cluster on this machine: chief, --ps servers and --workers workers as child processes' },
  ps: { type: 'number', integer: true, min: 1, default: 1, description: 'parameter servers (with --local)' },
  workers: { type: 'number', integer: true, min: 1, default: 2, description: 'workers (with --local)' },
  'max-restarts': { type: 'number', integer: true, min: 0, default: 3, description: 'restart a crashed worker, parameter server or chief up to this many times each (with --local; 0: never)' },
  backend: backendOption,
  'require-gpu': requireGpuOption,
  'job-id': { ...jobIdOption, description: 'job id (with TF_CONFIG; --local makes a fresh one)' },
  ...securityOptions,
  ...metricsOptions,
  'metrics-port-base': {
    type: 'number',
    integer: true,
    min: 1,
    max: 65535,
    value: 'N',
    description: "with --local: each role's Prometheus /metrics on its own port: parameter server i on N+i, the chief on N+P, worker i on N+P+1+i",
  },
  'log-level': logLevelOption,
  secure: { type: 'boolean', description: 'with --local: mutual TLS and a token between every role, made for this run (in OUT/secrets, keys mode 0600)' },
  'dry-run': dryRunOption,
} as const;

type TrainArgs = { [K in keyof typeof options]: unknown } & Parameters<typeof trainingSettings>[0] & {
  out: string | undefined;
  resume: string | undefined;
  local: boolean;
  ps: number;
  workers: number;
  'max-restarts': number;
  overwrite: boolean | undefined;
  backend: string;
  'require-gpu': boolean;
  'job-id': string;
  secure: boolean;
  'metrics-port-base'?: number | undefined;
  'ps-replicas': number;
} & SecurityArgs &
  MetricsArgs;

/** The argv a chief of a local cluster gets: the training flags given to tamp train. */
function chiefArgs(o: TrainArgs): string[] {
  const args: string[] = [];
  for (const flag of CHIEF_FLAGS) {
    const v = o[flag];
    if (typeof v === 'boolean') {
      if (v) args.push(`--${flag}`);
    } else if (v !== undefined) args.push(`--${flag}`, String(v as string | number));
  }
  return [...args, '--backend', o.backend];
}

/** Certificates and a token for one local run, under OUT/secrets: every role uses the same identity. */
async function secureRun(outDir: string): Promise<RpcSecurity> {
  const files = await writeClusterCerts(join(outDir, 'secrets'), { roles: [] });
  return { kind: 'tls', certFile: files.serverCert, keyFile: files.serverKey, caFile: files.ca, mutual: true, tokenFile: files.token };
}

async function trainLocalCluster(o: TrainArgs, out: Output, verbose: boolean, dryRun: boolean) {
  const outDir = o.out ?? o.resume;
  if (outDir === undefined) throw new UsageError('tamp train needs --out DIR');
  const settings = o.resume === undefined ? trainingSettings(o) : undefined; // fail on bad flags before starting processes
  checkPsReplicas(o['ps-replicas'], o.ps);
  checkOutputFolder(outDir, o.out === undefined ? '--resume' : '--out');
  if (o.resume === undefined && o.overwrite !== true) refuseOtherJobsResults(outDir);
  if (o['metrics-port'] !== undefined) throw new UsageError('--metrics-port serves one role; a local cluster\'s roles would share it: give --metrics-port-base N (a port per role from N on)');
  const metricsBase = o['metrics-port-base'];
  if (metricsBase !== undefined && metricsBase + o.ps + o.workers > 65535) {
    throw new UsageError(`--metrics-port-base ${metricsBase}: ${o.ps + 1 + o.workers} roles need ports up to ${metricsBase + o.ps + o.workers}, past 65535; give a lower base`);
  }
  if (dryRun) {
    return dryRunResult('train', { local: true, ps: o.ps, workers: o.workers, out: outDir, resume: o.resume, model: settings?.model, dataset: settings?.dataset, mode: settings?.mode, metricsPortBase: metricsBase, wirePush: settings?.wire?.push, wirePull: settings?.wire?.pull });
  }
  const given = securityFrom(o);
  if (o.secure && given.kind === 'tls') throw new UsageError('--secure makes its own certificates: drop --tls-cert/--tls-key/--tls-ca/--token-file, or drop --secure');
  const security = o.secure ? await secureRun(outDir) : given;
  const jobId = `local-${randomBytes(4).toString('hex')}`;
  if (o.secure) out.log(`secure: mutual TLS + token between every role (certificates in ${join(outDir, 'secrets')})`);
  // A resumed job runs in its checkpoint's mode, whatever the --mode default says.
  const mode = o.resume !== undefined ? (newestManifest(o.resume)?.training.mode ?? o.mode) : o.mode;
  out.log(`local cluster ${jobId}: 1 chief, ${o.ps} parameter server(s), ${o.workers} worker(s), ${mode}${o.resume !== undefined ? `, resuming ${o.resume}` : ''}`);
  const report = await launchLocalCluster({
    tamp: [process.execPath, TAMP_BIN],
    jobId,
    ps: o.ps,
    workers: o.workers,
    chiefArgs: [...chiefArgs(o), ...(o.out === undefined ? ['--out', outDir] : [])],
    workerArgs: ['--backend', o.backend, ...(o['require-gpu'] ? ['--require-gpu'] : [])],
    out: outDir,
    security,
    maxRestarts: o['max-restarts'],
    ...(metricsBase !== undefined ? { metricsPortBase: metricsBase } : {}),
    verbose,
    log: (m) => out.log(m),
    onProgress: clusterProgress(out, o.workers),
  });
  out.endProgress();
  return { result: report, text: trainSummary(report) };
}

export const trainCommand = defineCommand({
  name: 'train',
  summary: COMMAND_SUMMARIES.train,
  positionals: [],
  options,
  async run({ options: o, out }) {
    const tf = parseTfConfig(process.env.TF_CONFIG);
    if (tf !== undefined && !o.local) {
      out.log(`TF_CONFIG: running as ${tf.task.type} ${tf.task.index}`);
      const dry = o['dry-run'];
      if (tf.task.type === 'ps') return runPsRole({ ...o, index: undefined, host: undefined, port: undefined }, out, tf, dry);
      if (tf.task.type === 'worker') return runWorkerRole({ ...o, chief: undefined, index: undefined }, out, tf, dry);
      return runChiefRole({ ...o, ps: undefined, workers: undefined, host: undefined, port: undefined }, out, tf, dry);
    }
    if (o.local) {
      return trainLocalCluster(o as TrainArgs, out, out.verbose, o['dry-run']);
    }
    if (o.secure) throw new UsageError('--secure secures a local cluster: add --local');
    if (o['wire-push'] !== undefined || o['wire-pull'] !== undefined || o.wire !== undefined) throw new UsageError('--wire, --wire-push and --wire-pull choose what a cluster sends between its roles: add --local (one process sends nothing)');
    if (o.resume !== undefined) throw new UsageError('--resume continues a cluster job: add --local (or run the cluster roles)');
    // One process has no parameter server to replicate.
    if (o['ps-replicas'] !== 0) checkPsReplicas(o['ps-replicas'], 0);
    if (o.out === undefined) throw new UsageError('tamp train needs --out DIR');
    const s = trainingSettings(o);
    checkOutputFolder(o.out);
    if (o['dry-run']) return dryRunResult('train', { out: o.out, model: s.model, dataset: s.dataset, epochs: s.epochs, backend: o.backend });
    const report = await trainSingleProcess({
      model: s.model,
      dataset: s.dataset,
      epochs: s.epochs,
      ...(s.epochSize !== undefined ? { epochSize: s.epochSize } : {}),
      batchSize: s.batchSize,
      optimizer: s.optimizer.name,
      learningRate: s.optimizer.learningRate,
      backend: o.backend as BackendRequest,
      requireGpu: o['require-gpu'],
      seed: s.seed,
      out: o.out,
      log: (m) => out.log(m),
      onProgress: (p) =>
        out.progress({ label: `epoch ${p.epoch + 1}/${p.epochs}`, done: p.step, total: p.stepsPerEpoch, loss: p.loss, 'samples/s': p.samplesPerSecond }),
    });
    out.endProgress();
    return { result: report, text: trainSummary(report) };
  },
});
