/**
 * One replica: joins the chief, trains on its data shard with the selected
 * backend, and exchanges parameters and gradients with the parameter
 * servers through its communication thread. The loop itself, by mode, is
 * replica-loop.ts.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { BatchSource, type BackendRequest, ClusterError, UsageError, type SelectedBackend, errorMessage } from '@tamp/core';
import { INSECURE, type RpcSecurity, WORKER_KEY_ENV, WORKER_KEY_KEY, newSecret } from '@tamp/rpc';
import { epochLimit, loadDataset, useBackend } from '@tamp/core/node';
import { CommChannel } from './comm/channel.js';
import { CoordinatorClient } from './coordinator-client.js';
import { type JobConfig, decodeJobConfig, jobWire, workerId as psWorkerId } from './job-config.js';
import { trackWorkerLoop } from './metrics.js';
import { ReplicaLoop } from './replica-loop.js';

export interface WorkerOptions {
  readonly jobId: string;
  readonly chiefAddress: string;
  /** Ask for this task index (-1: the chief chooses). */
  readonly taskIndex?: number;
  /** This process's identity (default: TAMP_CLIENT_ID, else host and pid). */
  readonly clientId?: string;
  /**
   * What binds its slot at Join, so a restart of this worker may take its
   * live slot back at once (default: TAMP_WORKER_KEY, which the launcher sets
   * per slot, else a fresh one per process: a restart then waits until the
   * chief declares the old process lost).
   */
  readonly workerKey?: string;
  readonly backend: BackendRequest;
  readonly requireGpu?: boolean;
  readonly joinTimeoutMs?: number;
  /** Exit (non-zero, naming it) once the chief has not answered for this long (ms, default 60 s). */
  readonly peerTimeoutMs?: number;
  /**
   * A test hook: wait this long (ms) after computing each step's gradients,
   * so a test can make one worker slower than the others by construction
   * (default: the TAMP_TEST_STEP_DELAY_MS environment variable, else 0).
   */
  readonly stepDelayMs?: number;
  readonly log?: (message: string) => void;
  /** Transport security of every channel (chief and parameter servers; default: plaintext). */
  readonly security?: RpcSecurity;
}

/** The environment variable giving a worker its client id (the launcher sets it, one per slot). */
export const CLIENT_ID_ENV = 'TAMP_CLIENT_ID';

/** The test hook's value from the environment (0 when unset). */
export function stepDelayFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TAMP_TEST_STEP_DELAY_MS;
  if (raw === undefined || raw === '') return 0;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`TAMP_TEST_STEP_DELAY_MS must be a number of milliseconds ≥ 0, got "${raw}"; unset it outside tests`);
  return ms;
}

export interface WorkerReport {
  readonly workerId: string;
  readonly taskIndex: number;
  readonly backend: string;
  readonly steps: number;
  readonly samples: number;
  readonly seconds: number;
  /** sync: gradients the servers dropped as late. */
  readonly dropped: number;
  readonly stopped?: string;
}

const DEFAULT_PEER_TIMEOUT_MS = 60_000;

export async function runWorker(options: WorkerOptions): Promise<WorkerReport> {
  const log = options.log ?? (() => {});
  const clientId = options.clientId ?? (process.env[CLIENT_ID_ENV] || `${process.env.HOSTNAME ?? 'worker'}-${process.pid}`);
  const stepDelayMs = options.stepDelayMs ?? stepDelayFromEnv();
  const backend: SelectedBackend = await useBackend(options.backend, { requireGpu: options.requireGpu ?? false, log });
  const security = options.security ?? INSECURE;
  // What binds this worker's slot at Join (Membership.join): the launcher's per-slot key survives a restart; otherwise one per process.
  const workerKey = options.workerKey ?? (process.env[WORKER_KEY_ENV] || newSecret());
  const chief = new CoordinatorClient(options.chiefAddress, options.jobId, undefined, { security, metadata: { [WORKER_KEY_KEY]: workerKey } });
  let comm: CommChannel | undefined;
  let bridge: NodeJS.Timeout | undefined;
  let id = clientId;
  try {
    const joined = await chief.joinWithRetry(clientId, options.taskIndex ?? -1, backend.name, options.joinTimeoutMs ?? 120_000, (error) =>
      log(`waiting for the chief at ${options.chiefAddress}: ${errorMessage(error)}`),
    );
    chief.setWorkerToken(joined.workerToken);
    // A restarted chief comes back within the peer timeout: barriers and Leave wait for it (chief-rejoin.ts).
    chief.retryMs = options.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS;
    const config: JobConfig = decodeJobConfig(joined.jobConfigJson);
    const taskIndex = joined.taskIndex;
    id = psWorkerId(taskIndex);
    const t = config.training;
    log(`${id} of ${config.numWorkers}: ${t.model} on ${t.dataset}, ${t.mode}, batch ${t.batchSize}, backend ${backend.name}${t.wire !== undefined ? `, push ${t.wire.push}, pull ${t.wire.pull}` : ''}${config.startStep > 0 ? `, resuming at step ${config.startStep}` : ''}`);
    const wire = jobWire(t);
    // Heartbeat from this thread from the moment of Join until the comm
    // thread's own heartbeats are answered: starting that thread loads its
    // code (seconds through tsx on a loaded machine), and a worker silent
    // that long was wrongly declared lost. Only then load the dataset and
    // build the model: that blocks this thread's event loop (so its own
    // heartbeats too), while the comm thread's go on.
    const zero = { localStep: 0n, epoch: 0, loss: 0, samples: 0n, seconds: 0 };
    const beat = () => void chief.heartbeat(id, zero).catch(() => undefined);
    beat();
    bridge = setInterval(beat, config.heartbeatIntervalMs);
    comm = new CommChannel(
      {
        jobId: config.jobId,
        workerId: id,
        psAddresses: config.psAddresses,
        placement: config.placement,
        chiefAddress: options.chiefAddress,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        chiefLostAfterMs: options.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS,
        security,
        wire: { push: wire.wirePush, pull: wire.wirePull, warmupSteps: t.wire?.warmupSteps ?? 0, ...(t.wire?.errorFeedback === false ? { errorFeedback: false } : {}), ...(t.wire?.clipNorm !== undefined ? { clipNorm: t.wire.clipNorm } : {}), ...(t.wire?.sparseBiases === true ? { sparseBiases: true } : {}), ...(wire.wireAuto === true ? { auto: true } : {}), ...(wire.momentumCorrection === true ? { momentum: t.optimizer.momentum } : {}), ...(wire.adamCorrection === true ? { adam: { beta1: t.optimizer.beta1, beta2: t.optimizer.beta2, epsilon: t.optimizer.epsilon } } : {}) },
        workerToken: joined.workerToken,
        workerKey,
        backend: backend.name,
      },
    );
    await comm.ready;
    clearInterval(bridge);
    if (comm.stopped !== undefined) throw new ClusterError(comm.peerLost ? 'PEER_UNAVAILABLE' : 'JOB_FAILED', `${id}: ${comm.stopped}`);
    const dataset = loadDataset(t.dataset);
    const model = await tfl.models.modelFromJSON({ modelTopology: config.modelTopology as never });
    const source = new BatchSource(dataset.train, {
      batchSize: t.batchSize,
      seed: t.seed,
      replica: { index: taskIndex, count: config.numWorkers },
      ...epochLimit(dataset, t.epochSize),
    });
    const loop = new ReplicaLoop(config, id, model, source, comm, chief, log, stepDelayMs, trackWorkerLoop(taskIndex));
    const result = t.mode === 'sync' ? await loop.runSync() : await loop.runAsync();
    if (comm.wireChoice !== undefined) log(`${id}: --wire auto chose ${comm.wireChoice}`);
    const wireChoice = comm.wireChoice !== undefined ? { wireChoice: comm.wireChoice } : {};
    if (result.stopped === undefined) await chief.leave(id, true, 'done', { localStep: BigInt(result.steps), samples: BigInt(result.samples), seconds: result.seconds, ...loop.timeSplit(), ...wireChoice });
    else if (comm.peerLost) throw new ClusterError('PEER_UNAVAILABLE', `${id}: ${result.stopped}; exiting`);
    else log(`${id}: stopping: ${result.stopped}`);
    model.dispose();
    return { workerId: id, taskIndex, backend: backend.name, ...result };
  } catch (error) {
    // One try: the chief may be what failed.
    chief.retryMs = 0;
    await chief.leave(id, false, errorMessage(error)).catch(() => undefined);
    throw error;
  } finally {
    clearInterval(bridge);
    await comm?.close();
    chief.close();
  }
}
