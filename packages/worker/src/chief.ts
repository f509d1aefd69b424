/**
 * The chief: initialises the parameter servers from the model (zoo or
 * model.json) or from a checkpoint, runs the Coordinator, keeps the servers
 * told which workers are alive, runs checkpoint barriers, evaluates on the
 * validation split after each epoch, and scores the final model on the test
 * and validation splits for the report.
 */
import { join } from 'node:path';
import { type BackendRequest, ClusterError, type Dataset, errorMessage, evaluateModel, stepsPerEpoch } from '@tamp/core';
import { type TrainReport, atomicWriteFile, checkTask, createOrLoadModel, describeScore, epochLimit, loadDataset, saveLayersModel, testFields, useBackend, validationFields } from '@tamp/core/node';
import { CHIEF_READER_ID, ParameterClient, placeVariables } from '@tamp/parameter-server';
import { type RestoredState, findLatestCheckpoint, pruneCheckpoints, restoreTensors, saveCheckpoint } from './checkpoints.js';
import { type RunningCoordinator, startCoordinator } from './coordinator.js';
import { INSECURE, type RpcSecurity } from '@tamp/rpc';
import { type JobConfig, type TrainingSettings, encodeJobConfig, workerId } from './job-config.js';
import { setVariables, variableSpecs, variableValues } from './model-state.js';

export interface ChiefOptions {
  readonly jobId: string;
  /** Transport security of the coordinator and of the shard clients (default: plaintext). */
  readonly security?: RpcSecurity;
  readonly host?: string;
  readonly port?: number;
  readonly psAddresses: readonly string[];
  readonly numWorkers: number;
  /** Required unless resuming (a checkpoint brings its own). */
  readonly training?: TrainingSettings;
  readonly out: string;
  /** Continue from the latest complete checkpoint under this folder (a previous --out). */
  readonly resume?: string;
  /** A checkpoint every this many steps of each worker (default: one epoch; 0: only at the end). */
  readonly checkpointEvery?: number;
  /** Backend for the chief's own evaluation. */
  readonly backend?: BackendRequest;
  readonly heartbeatIntervalMs?: number;
  /** A worker silent this long is dropped from barriers (default 10 s). */
  readonly heartbeatTimeoutMs?: number;
  /** Fail when not every worker has joined by then. */
  readonly joinTimeoutMs?: number;
  readonly log?: (message: string) => void;
  readonly onListening?: (port: number) => void;
  readonly onProgress?: (p: ChiefProgress) => void;
}

export interface ChiefProgress {
  readonly globalStep: number;
  readonly totalSteps: number;
  readonly epoch: number;
  readonly epochs: number;
  readonly samplesPerSecond: number;
  readonly loss: number;
  readonly validationAccuracy?: number;
}

export interface ClusterEpochRecord {
  readonly epoch: number;
  readonly loss: number;
  /** Classifiers: validation accuracy after the epoch (the test split is scored once, at the end). */
  readonly validationAccuracy?: number;
  /** Detectors: validation mAP@0.5. */
  readonly validationMAP?: number;
  readonly samplesPerSecond: number;
  readonly globalStep: number;
}

export interface ChiefReport extends Omit<TrainReport, 'history'> {
  readonly jobId: string;
  readonly history: readonly ClusterEpochRecord[];
  /** Per worker: its steps and samples, and its own training time and rate (a straggler shows here; the job's rate is all samples over the longest time). */
  readonly workerStats: ReadonlyArray<{ workerId: string; backend: string; state: string; steps: number; samples: number; seconds: number; samplesPerSecond: number; joins: number }>;
  readonly lostWorkers: number;
  /** sync with backup workers: late gradients the servers dropped. */
  readonly droppedGradients: number;
  readonly backupWorkers: number;
  readonly staleness: number;
  /** ssp: pulls that waited for the slowest worker, and the largest lead allowed. */
  readonly sspWaits: number;
  readonly maxLead: number;
  readonly checkpoints: readonly string[];
  /** The checkpoint this run resumed from, if any. */
  readonly resumedFrom: string | undefined;
}

function meanLoss(losses: number[]): number {
  const finite = losses.filter((l) => Number.isFinite(l) && l > 0);
  return finite.length === 0 ? NaN : finite.reduce((a, b) => a + b, 0) / finite.length;
}

export async function runChief(options: ChiefOptions): Promise<ChiefReport> {
  const log = options.log ?? (() => {});
  const interval = options.heartbeatIntervalMs ?? 1_000;
  if (options.numWorkers < 1) throw new ClusterError('CLUSTER_CONFIG', `a job needs at least one worker, got ${options.numWorkers}`);
  if (options.psAddresses.length < 1) throw new ClusterError('CLUSTER_CONFIG', 'a job needs at least one parameter server');

  let restored: RestoredState | undefined;
  if (options.resume !== undefined) {
    restored = findLatestCheckpoint(options.resume, (m) => log(`warning: ${m}`));
    if (restored === undefined) throw new ClusterError('JOB_FAILED', `--resume ${options.resume}: no complete checkpoint found under ${join(options.resume, 'checkpoints')}`);
    log(`resuming from ${restored.dir} (step ${restored.manifest.step} of each worker, version ${restored.version})`);
    if (restored.manifest.numWorkers !== options.numWorkers) {
      log(`warning: the checkpoint was written by ${restored.manifest.numWorkers} workers, this job has ${options.numWorkers}: data shards change`);
    }
  }
  const t: TrainingSettings | undefined = restored?.manifest.training ?? options.training;
  if (t === undefined) throw new ClusterError('CLUSTER_CONFIG', 'the chief needs training settings (--model, --dataset, ...) or --resume');
  if (t.mode === 'sync' && t.backupWorkers >= options.numWorkers) {
    throw new ClusterError('CLUSTER_CONFIG', `--backup-workers ${t.backupWorkers} leaves no worker to wait for: use fewer than --workers ${options.numWorkers}`);
  }

  const dataset: Dataset = loadDataset(t.dataset);
  checkTask(t.model, dataset);
  const backend = await useBackend(options.backend ?? 'auto', { log });
  const model = await createOrLoadModel(t.model, t.seed);
  const specs = variableSpecs(model);
  const placement = placeVariables(specs, options.psAddresses.length);
  const initial = restored?.values ?? (await variableValues(model));
  const workerIds = Array.from({ length: options.numWorkers }, (_, i) => workerId(i));
  const params = new ParameterClient(options.psAddresses, placement, options.jobId, { rpc: { security: options.security ?? INSECURE } });
  const startStep = restored?.manifest.step ?? 0;
  const perWorker = stepsPerEpoch(dataset.train, { batchSize: t.batchSize, seed: t.seed, replica: { index: 0, count: options.numWorkers }, ...epochLimit(dataset, t.epochSize) });
  const stepsEach = perWorker * t.epochs;
  const checkpointEvery = options.checkpointEvery ?? restored?.manifest.checkpointEvery ?? perWorker;
  const checkpoints: string[] = [];
  let coordinator: RunningCoordinator | undefined;
  try {
    log(`initialising ${options.psAddresses.length} parameter server(s) with ${specs.length} variables (${t.optimizer.name}, ${t.mode})`);
    await Promise.all(
      params.shards.map(async (shard, i) => {
        await shard.waitReachable(120_000);
        await shard.assign(
          {
            shardIndex: i,
            optimizer: t.optimizer,
            version: restored?.version ?? 0n,
            mode: t.mode,
            syncReplicas: options.numWorkers - t.backupWorkers,
            staleness: t.staleness,
            workerIds,
            workerStep: BigInt(startStep),
          },
          restored !== undefined ? restoreTensors(restored, params, i, t.optimizer) : params.partsFor(i, initial),
        );
      }),
    );

    const config: JobConfig = {
      jobId: options.jobId,
      training: t,
      modelTopology: model.toJSON(null, false),
      numWorkers: options.numWorkers,
      psAddresses: options.psAddresses,
      placement,
      heartbeatIntervalMs: interval,
      startStep,
      checkpointEvery,
    };
    coordinator = await startCoordinator({
      jobId: options.jobId,
      numWorkers: options.numWorkers,
      jobConfigJson: encodeJobConfig(config),
      psAddresses: options.psAddresses,
      heartbeatIntervalMs: interval,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 10_000,
      epochs: t.epochs,
      log,
      rpc: { security: options.security ?? INSECURE },
      ...(options.host !== undefined ? { host: options.host } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
    });
    options.onListening?.(coordinator.port);
    const state = coordinator.state;
    // Steps the whole job takes: sync applies one step for all workers.
    const totalSteps = t.mode === 'sync' ? stepsEach : stepsEach * options.numWorkers;
    state.totalSteps = BigInt(totalSteps);
    const history: ClusterEpochRecord[] = [...((restored?.manifest.history ?? []) as ClusterEpochRecord[])];
    const priorSamples = restored?.manifest.samples ?? 0;
    const started = Date.now();
    let epochStart = { time: Date.now(), samples: 0n };
    let announced = '';

    // After each epoch: the validation split only, as one-process training does (the test split is
    // scored once, on the final model). On a small machine this evaluation competes with the workers.
    const evaluateValidation = async () => {
      const { values } = await params.pullAll(CHIEF_READER_ID);
      setVariables(model, values);
      return evaluateModel(model, dataset.validation);
    };

    const writeCheckpoint = async (step: number) => {
      const file = await saveCheckpoint(
        params,
        options.out,
        { jobId: options.jobId, training: t, numWorkers: options.numWorkers, checkpointEvery, variables: specs, history, samples: priorSamples + Number(state.samples) },
        step,
      );
      pruneCheckpoints(options.out);
      checkpoints.push(file);
      state.checkpointStep = BigInt(step);
      log(`checkpoint at step ${step}: ${file}`);
      return file;
    };

    // Wake on the heartbeat interval, or at once when membership or a
    // checkpoint barrier changes (workers wait at barriers for this loop).
    let wake: () => void = () => {};
    state.onChange(() => wake());
    for (;;) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, interval);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = () => {};
      try {
        state.globalStep = (await params.shards[0]?.status())?.version ?? state.globalStep;
      } catch (error) {
        log(`parameter server 0 did not answer: ${errorMessage(error)}`);
      }
      state.checkLost();
      const live = state.liveWorkerIds.join(',');
      if (live !== announced) {
        await Promise.all(params.shards.map((s) => s.updateMembership(state.liveWorkerIds)));
        announced = live;
      }
      if (state.barrierReady && state.barrier !== undefined) {
        const step = state.barrier.step;
        try {
          const file = await writeCheckpoint(step);
          state.releaseBarrier({ complete: true, manifest: file });
        } catch (error) {
          log(`checkpoint at step ${step} failed: ${errorMessage(error)}; training on without it`);
          state.releaseBarrier({ complete: false, manifest: '' });
        }
      }
      if (!state.allJoinedOnce && Date.now() - started > (options.joinTimeoutMs ?? 300_000)) {
        throw new ClusterError('JOB_FAILED', `only ${state.workers.length} of ${options.numWorkers} workers joined within ${Math.round((options.joinTimeoutMs ?? 300_000) / 1000)} s`);
      }
      if (state.allJoinedOnce && state.workers.every((w) => w.state === 'lost' || w.state === 'left')) {
        throw new ClusterError('JOB_FAILED', "every worker was lost before finishing; see the workers' logs");
      }
      while (state.completedEpochs > history.length) {
        const epoch = history.length + 1;
        const validation = await evaluateValidation();
        const now = Date.now();
        const samples = state.samples;
        const record: ClusterEpochRecord = {
          epoch,
          loss: meanLoss(state.workers.map((w) => w.loss)),
          ...(validation.task === 'detection' ? { validationMAP: validation.score } : { validationAccuracy: validation.score }),
          samplesPerSecond: Number(samples - epochStart.samples) / Math.max(1e-3, (now - epochStart.time) / 1000),
          globalStep: Number(state.globalStep),
        };
        epochStart = { time: now, samples };
        history.push(record);
        state.epoch = epoch;
        // The job status's validation figure: accuracy, or mAP for a detector.
        state.validationAccuracy = validation.score;
        log(`epoch ${epoch}/${t.epochs}: loss ${record.loss.toFixed(4)}, ${describeScore(validation, 'validation')}, global step ${record.globalStep}`);
      }
      state.loss = meanLoss(state.workers.map((w) => w.loss));
      options.onProgress?.({
        globalStep: Number(state.globalStep),
        totalSteps,
        epoch: state.completedEpochs,
        epochs: t.epochs,
        samplesPerSecond: state.samplesPerSecond,
        loss: state.loss,
        ...(history.length > 0 ? { validationAccuracy: state.validationAccuracy } : {}),
      });
      if (state.trainingOver) break;
    }
    state.jobState = 'finishing';
    const status = await Promise.all(params.shards.map((s) => s.status()));
    state.globalStep = status[0]?.version ?? state.globalStep;
    await writeCheckpoint(stepsEach);
    const trainSeconds = Math.max(0, ...state.workers.map((w) => w.seconds));
    const { values } = await params.pullAll(CHIEF_READER_ID);
    setVariables(model, values);
    const test = await evaluateModel(model, dataset.test);
    const validation = await evaluateModel(model, dataset.validation);
    const modelPath = await saveLayersModel(model, join(options.out, 'model'), { model: t.model, dataset: t.dataset, task: dataset.kind, classNames: dataset.classNames });
    const workers = state.workers;
    const backends = [...new Set(workers.map((w) => w.backend))];
    const samples = Number(state.samples);
    const report: ChiefReport = {
      jobId: options.jobId,
      model: t.model,
      dataset: dataset.name,
      backend: backends.length === 1 ? (backends[0] as string) : backends.join('+'),
      adapter: undefined,
      mode: t.mode,
      workers: options.numWorkers,
      ps: options.psAddresses.length,
      epochs: t.epochs,
      batchSize: t.batchSize,
      optimizer: t.optimizer.name,
      learningRate: t.optimizer.learningRate,
      seed: t.seed,
      steps: Number(state.globalStep),
      samples: priorSamples + samples,
      trainSeconds,
      samplesPerSecond: state.samplesPerSecond,
      task: dataset.kind,
      ...testFields(test),
      ...validationFields(validation),
      history,
      modelPath,
      workerStats: workers.map((w) => ({
        workerId: w.workerId,
        backend: w.backend,
        state: w.state,
        steps: Number(w.localStep),
        samples: Number(w.samples),
        seconds: w.seconds,
        samplesPerSecond: w.seconds > 0 ? Number(w.samples) / w.seconds : 0,
        joins: w.joins,
      })),
      lostWorkers: workers.filter((w) => w.state === 'lost' || w.state === 'left').length,
      droppedGradients: Number(status[0]?.pushesDropped ?? 0n),
      backupWorkers: t.backupWorkers,
      staleness: t.staleness,
      sspWaits: status.reduce((n, s) => n + Number(s.pullsWaited), 0),
      maxLead: status.reduce((n, s) => Math.max(n, Number(s.maxLead)), 0),
      checkpoints,
      resumedFrom: restored?.dir,
    };
    atomicWriteFile(join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    state.jobState = 'done';
    const perWorker = report.workerStats.length > 1 ? ` (${report.workerStats.map((w) => `${w.workerId} ${w.samplesPerSecond.toFixed(0)}`).join(', ')})` : '';
    log(`done: ${describeScore(test, 'test')}, ${report.steps} steps, ${report.samplesPerSecond.toFixed(0)} samples/s${perWorker}; model in ${modelPath} (backend for evaluation: ${backend.name})`);
    await Promise.all(params.shards.map((s) => s.shutdown('job done').catch((error: unknown) => log(`could not stop ${s.address}: ${errorMessage(error)}`))));
    // Let the workers' next heartbeat hear "stop" before the server goes.
    await new Promise((resolve) => setTimeout(resolve, Math.min(interval, 500)));
    return report;
  } catch (error) {
    if (coordinator !== undefined) {
      coordinator.state.jobState = 'failed';
      coordinator.state.error = errorMessage(error);
      coordinator.state.releaseBarrier({ complete: false, manifest: '' });
    }
    // Stop the parameter servers too, so an orchestrator sees the whole job end
    // (`docker compose up` returns) instead of idle servers waiting forever. Their
    // state is in the last checkpoint: `tamp train --resume` continues from it.
    await Promise.all(params.shards.map((s) => s.shutdown(`job failed: ${errorMessage(error)}`).catch(() => undefined)));
    throw error;
  } finally {
    params.close();
    await coordinator?.close();
    model.dispose();
  }
}
