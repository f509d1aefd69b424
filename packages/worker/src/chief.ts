/**
 * The chief: initialises the parameter servers from the model (zoo or
 * model.json), runs the Coordinator, evaluates on the validation and test
 * splits after each epoch, and writes the final model and report.
 */
import { join } from 'node:path';
import { type BackendRequest, ClusterError, type ImageClassificationDataset, errorMessage, evaluateClassifier, stepsPerEpoch } from '@tamp/core';
import { type TrainReport, atomicWriteFile, createOrLoadModel, loadClassificationDataset, saveLayersModel, useBackend } from '@tamp/core/node';
import { CHIEF_READER_ID, ParameterClient, placeVariables } from '@tamp/parameter-server';
import { type RunningCoordinator, startCoordinator } from './coordinator.js';
import { type JobConfig, type TrainingSettings, encodeJobConfig, workerId } from './job-config.js';
import { setVariables, variableSpecs, variableValues } from './model-state.js';

export interface ChiefOptions {
  readonly jobId: string;
  readonly host?: string;
  readonly port?: number;
  readonly psAddresses: readonly string[];
  readonly numWorkers: number;
  readonly training: TrainingSettings;
  readonly out: string;
  /** Backend for the chief's own evaluation. */
  readonly backend?: BackendRequest;
  readonly heartbeatIntervalMs?: number;
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
  readonly validationAccuracy: number;
  readonly testAccuracy: number;
  readonly samplesPerSecond: number;
  readonly globalStep: number;
}

export interface ChiefReport extends Omit<TrainReport, 'history'> {
  readonly jobId: string;
  readonly history: readonly ClusterEpochRecord[];
  readonly workerStats: ReadonlyArray<{ workerId: string; backend: string; state: string; steps: number; samples: number; joins: number }>;
  readonly lostWorkers: number;
}

function meanLoss(losses: number[]): number {
  const finite = losses.filter((l) => Number.isFinite(l) && l > 0);
  return finite.length === 0 ? NaN : finite.reduce((a, b) => a + b, 0) / finite.length;
}

export async function runChief(options: ChiefOptions): Promise<ChiefReport> {
  const log = options.log ?? (() => {});
  const t = options.training;
  const interval = options.heartbeatIntervalMs ?? 1_000;
  if (options.numWorkers < 1) throw new ClusterError('CLUSTER_CONFIG', `a job needs at least one worker, got ${options.numWorkers}`);
  if (options.psAddresses.length < 1) throw new ClusterError('CLUSTER_CONFIG', 'a job needs at least one parameter server');

  const dataset: ImageClassificationDataset = loadClassificationDataset(t.dataset);
  const backend = await useBackend(options.backend ?? 'auto', { log });
  const model = await createOrLoadModel(t.model, t.seed);
  const specs = variableSpecs(model);
  const placement = placeVariables(specs, options.psAddresses.length);
  const initial = await variableValues(model);
  const workerIds = Array.from({ length: options.numWorkers }, (_, i) => workerId(i));
  const params = new ParameterClient(options.psAddresses, placement, options.jobId);
  let coordinator: RunningCoordinator | undefined;
  try {
    log(`initialising ${options.psAddresses.length} parameter server(s) with ${specs.length} variables (${t.optimizer.name}, ${t.mode})`);
    await Promise.all(
      params.shards.map(async (shard, i) => {
        await shard.waitReachable(120_000);
        await shard.assign(
          { shardIndex: i, optimizer: t.optimizer, version: 0n, mode: t.mode, syncReplicas: options.numWorkers - t.backupWorkers, staleness: t.staleness, workerIds },
          params.partsFor(i, initial),
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
      ...(options.host !== undefined ? { host: options.host } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
    });
    options.onListening?.(coordinator.port);
    const state = coordinator.state;

    const perWorker = stepsPerEpoch(dataset.train, { batchSize: t.batchSize, seed: t.seed, replica: { index: 0, count: options.numWorkers }, ...(t.epochSize !== undefined ? { limit: t.epochSize } : {}) });
    const totalSteps = perWorker * t.epochs * options.numWorkers;
    state.totalSteps = BigInt(totalSteps);
    const history: ClusterEpochRecord[] = [];
    const started = Date.now();
    let firstJoin: number | undefined;
    let epochStart = { time: Date.now(), samples: 0n };

    const evaluate = async () => {
      const { values } = await params.pullAll(CHIEF_READER_ID);
      setVariables(model, values);
      const validation = await evaluateClassifier(model, dataset.validation);
      const test = await evaluateClassifier(model, dataset.test);
      return { validation, test };
    };

    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, interval));
      if (firstJoin === undefined && state.workers.length > 0) {
        firstJoin = Date.now();
        epochStart = { time: firstJoin, samples: 0n };
      }
      try {
        state.globalStep = (await params.shards[0]?.status())?.version ?? state.globalStep;
      } catch (error) {
        log(`parameter server 0 did not answer: ${errorMessage(error)}`);
      }
      state.checkLost();
      if (!state.allJoinedOnce && Date.now() - started > (options.joinTimeoutMs ?? 300_000)) {
        throw new ClusterError('JOB_FAILED', `only ${state.workers.length} of ${options.numWorkers} workers joined within ${Math.round((options.joinTimeoutMs ?? 300_000) / 1000)} s`);
      }
      if (state.allJoinedOnce && state.workers.every((w) => w.state === 'lost' || w.state === 'left')) {
        throw new ClusterError('JOB_FAILED', 'every worker was lost before finishing; see the workers\' logs');
      }
      while (state.completedEpochs > history.length) {
        const epoch = history.length + 1;
        const { validation, test } = await evaluate();
        const now = Date.now();
        const samples = state.samples;
        const record: ClusterEpochRecord = {
          epoch,
          loss: meanLoss(state.workers.map((w) => w.loss)),
          validationAccuracy: validation.accuracy,
          testAccuracy: test.accuracy,
          samplesPerSecond: Number(samples - epochStart.samples) / Math.max(1e-3, (now - epochStart.time) / 1000),
          globalStep: Number(state.globalStep),
        };
        epochStart = { time: now, samples };
        history.push(record);
        state.epoch = epoch;
        state.validationAccuracy = validation.accuracy;
        log(
          `epoch ${epoch}/${t.epochs}: loss ${record.loss.toFixed(4)}, validation accuracy ${(validation.accuracy * 100).toFixed(2)}%, test accuracy ${(test.accuracy * 100).toFixed(2)}%, global step ${record.globalStep}`,
        );
      }
      state.loss = meanLoss(state.workers.map((w) => w.loss));
      options.onProgress?.({
        globalStep: Number(state.globalStep),
        totalSteps,
        epoch: state.completedEpochs,
        epochs: t.epochs,
        samplesPerSecond: state.samplesPerSecond,
        loss: state.loss,
        ...(history.length > 0 ? { validationAccuracy: history[history.length - 1]?.validationAccuracy as number } : {}),
      });
      if (state.trainingOver) break;
    }
    state.jobState = 'finishing';
    const trainSeconds = Math.max(0, ...state.workers.map((w) => w.seconds));
    const { values } = await params.pullAll(CHIEF_READER_ID);
    setVariables(model, values);
    const test = await evaluateClassifier(model, dataset.test);
    const validation = await evaluateClassifier(model, dataset.validation);
    const modelPath = await saveLayersModel(model, join(options.out, 'model'));
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
      samples,
      trainSeconds,
      samplesPerSecond: state.samplesPerSecond,
      testAccuracy: test.accuracy,
      testLoss: test.loss,
      validationAccuracy: validation.accuracy,
      history,
      modelPath,
      workerStats: workers.map((w) => ({ workerId: w.workerId, backend: w.backend, state: w.state, steps: Number(w.localStep), samples: Number(w.samples), joins: w.joins })),
      lostWorkers: workers.filter((w) => w.state === 'lost' || w.state === 'left').length,
    };
    atomicWriteFile(join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    state.jobState = 'done';
    log(`done: test accuracy ${(test.accuracy * 100).toFixed(2)}%, ${report.steps} steps, ${report.samplesPerSecond.toFixed(0)} samples/s; model in ${modelPath} (backend for evaluation: ${backend.name})`);
    await Promise.all(params.shards.map((s) => s.shutdown('job done').catch((error: unknown) => log(`could not stop ${s.address}: ${errorMessage(error)}`))));
    // Let the workers' next heartbeat hear "stop" before the server goes.
    await new Promise((resolve) => setTimeout(resolve, Math.min(interval, 500)));
    return report;
  } catch (error) {
    if (coordinator !== undefined) {
      coordinator.state.jobState = 'failed';
      coordinator.state.error = errorMessage(error);
    }
    throw error;
  } finally {
    params.close();
    await coordinator?.close();
    model.dispose();
  }
}
