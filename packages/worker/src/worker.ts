/**
 * One replica: joins the chief, trains on its data shard with the selected
 * backend, and exchanges parameters and gradients with the parameter
 * servers through its communication thread.
 *
 * async mode: each step's gradient is pushed as soon as it is computed, and
 * the next parameters are pulled while the step computes (they are then at
 * most one of this worker's own updates stale, which asynchronous SGD
 * tolerates by design).
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { type BackendRequest, ClusterError, type SelectedBackend, computeGradients, errorMessage, iterateBatches, stepsPerEpoch } from '@tamp/core';
import { loadClassificationDataset, useBackend } from '@tamp/core/node';
import { CommChannel } from './comm/channel.js';
import type { NamedArray } from './comm/messages.js';
import { CoordinatorClient } from './coordinator-client.js';
import { type JobConfig, decodeJobConfig, workerId as psWorkerId } from './job-config.js';
import { setVariables } from './model-state.js';

export interface WorkerOptions {
  readonly jobId: string;
  readonly chiefAddress: string;
  /** Ask for this task index (-1: the chief chooses). */
  readonly taskIndex?: number;
  /** This process's identity (default: host and pid). */
  readonly clientId?: string;
  readonly backend: BackendRequest;
  readonly requireGpu?: boolean;
  readonly joinTimeoutMs?: number;
  readonly log?: (message: string) => void;
}

export interface WorkerReport {
  readonly workerId: string;
  readonly taskIndex: number;
  readonly backend: string;
  readonly steps: number;
  readonly samples: number;
  readonly seconds: number;
  readonly stopped?: string;
}

export async function runWorker(options: WorkerOptions): Promise<WorkerReport> {
  const log = options.log ?? (() => {});
  const clientId = options.clientId ?? `${process.env.HOSTNAME ?? 'worker'}-${process.pid}`;
  const backend: SelectedBackend = await useBackend(options.backend, { requireGpu: options.requireGpu ?? false, log });
  const chief = new CoordinatorClient(options.chiefAddress, options.jobId);
  let comm: CommChannel | undefined;
  let id = clientId;
  try {
    const joined = await chief.joinWithRetry(clientId, options.taskIndex ?? -1, backend.name, options.joinTimeoutMs ?? 120_000, (error) =>
      log(`waiting for the chief at ${options.chiefAddress}: ${errorMessage(error)}`),
    );
    const config: JobConfig = decodeJobConfig(joined.jobConfigJson);
    const taskIndex = joined.taskIndex;
    id = psWorkerId(taskIndex);
    const t = config.training;
    log(`${id} of ${config.numWorkers}: ${t.model} on ${t.dataset}, ${t.mode}, batch ${t.batchSize}, backend ${backend.name}`);
    const dataset = loadClassificationDataset(t.dataset);
    const model = await tfl.models.modelFromJSON({ modelTopology: config.modelTopology as never });
    comm = new CommChannel(
      {
        jobId: config.jobId,
        workerId: id,
        psAddresses: config.psAddresses,
        placement: config.placement,
        chiefAddress: options.chiefAddress,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        chiefLostAfterMs: Math.max(30_000, config.heartbeatIntervalMs * 30),
      },
      log,
    );
    if (t.mode !== 'async') throw new ClusterError('CLUSTER_CONFIG', `mode "${t.mode}" is not supported by this worker`);
    const replica = { index: taskIndex, count: config.numWorkers };
    const batchOptions = { batchSize: t.batchSize, seed: t.seed, replica, ...(t.epochSize !== undefined ? { limit: t.epochSize } : {}) };
    const steps = stepsPerEpoch(dataset.train, batchOptions);
    let step = 0n;
    let samples = 0n;
    let loss = NaN;
    let params = await comm.pull();
    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    // Pushes still on their way: up to two overlap with the next step's
    // compute, so the parameter server's apply time is hidden too.
    const inFlight: Array<Promise<unknown>> = [];
    const MAX_IN_FLIGHT = 2;
    let stopped: string | undefined;
    // Where a step's time goes (ms, per epoch), logged with each epoch.
    const phases = { weights: 0, compute: 0, readback: 0, waitPush: 0, waitPull: 0 };
    let mark = performance.now();
    const lap = (phase: keyof typeof phases) => {
      const now = performance.now();
      phases[phase] += now - mark;
      mark = now;
    };
    outer: for (let epoch = 0; epoch < t.epochs; epoch++) {
      let i = 0;
      for (const batch of iterateBatches(dataset.train, { ...batchOptions, epoch })) {
        if (comm.stopped !== undefined) {
          stopped = comm.stopped;
          break outer;
        }
        mark = performance.now();
        setVariables(model, params.values);
        const basedOn = params.versions;
        const next = comm.pull();
        lap('weights');
        const result = await computeGradients(model, batch);
        loss = result.loss;
        lap('compute');
        const grads: NamedArray[] = [];
        for (const [name, g] of result.grads) {
          grads.push({ name, data: (await g.data()) as Float32Array });
          g.dispose();
        }
        lap('readback');
        if (!Number.isFinite(loss)) {
          await Promise.allSettled([next, ...inFlight]);
          throw new ClusterError('NON_FINITE', `${id}: loss is ${loss} at epoch ${epoch + 1}, step ${i + 1}; lower the learning rate (now ${t.optimizer.learningRate})`);
        }
        while (inFlight.length >= MAX_IN_FLIGHT) await inFlight.shift();
        inFlight.push(comm.push(step, basedOn, batch.size, grads));
        lap('waitPush');
        step++;
        i++;
        samples += BigInt(batch.size);
        params = await next;
        lap('waitPull');
        comm.progress({ localStep: step, epoch, loss, accuracy: 0, samples, seconds: elapsed() });
      }
      while (inFlight.length > 0) await inFlight.shift();
      comm.progress({ localStep: step, epoch: epoch + 1, loss, accuracy: 0, samples, seconds: elapsed() });
      const perStep = Object.entries(phases).map(([k, v]) => `${k} ${(v / Math.max(1, i)).toFixed(1)}`).join(', ');
      log(`${id}: epoch ${epoch + 1}/${t.epochs} done (${i} of ${steps} steps), loss ${loss.toFixed(4)}; ms per step: ${perStep}`);
      for (const k of Object.keys(phases) as Array<keyof typeof phases>) phases[k] = 0;
    }
    while (inFlight.length > 0) await inFlight.shift();
    const seconds = elapsed();
    if (stopped === undefined) await chief.leave(id, true, 'done', { localStep: step, samples, seconds });
    else log(`${id}: stopping: ${stopped}`);
    model.dispose();
    return { workerId: id, taskIndex, backend: backend.name, steps: Number(step), samples: Number(samples), seconds, ...(stopped !== undefined ? { stopped } : {}) };
  } catch (error) {
    await chief.leave(id, false, errorMessage(error)).catch(() => undefined);
    throw error;
  } finally {
    await comm?.close();
    chief.close();
  }
}
