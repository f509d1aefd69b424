/**
 * Training in one process: the embedded default before a cluster is asked
 * for, and the baseline the cluster's speed is measured against.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { iterateBatches, stepsPerEpoch } from '../data/dataset.js';
import { InvalidArgumentError, ModelError } from '../errors.js';
import { type Evaluation, evaluateModel } from '../metrics/evaluate.js';
import { recalibrateBatchNorm, recalibrationBatches } from '../train/batch-norm.js';
import { trainStep } from '../train/classifier.js';
import { createTfOptimizer, optimizerSettings } from '../train/optimizers.js';
import { ZOO, createModel, isZooModel, zooEntry, zooNames } from '../zoo/zoo.js';
import type { Dataset } from '../data/dataset.js';
import type { BackendRequest } from '../backend/select.js';
import { useBackend } from './backends.js';
import { describeDatasetChoices, loadDataset } from './datasets/registry.js';
import { atomicWriteFile } from './files.js';
import { loadLayersModelFile, saveLayersModel } from './model-files.js';
import { checkUserFile } from './user-paths.js';

export interface TrainOptions {
  model: string;
  dataset: string;
  epochs: number;
  /** Cap on samples per epoch (default: the whole training split; shapes: 5,000 scenes). */
  epochSize?: number;
  batchSize: number;
  optimizer: string;
  learningRate: number;
  backend: BackendRequest;
  requireGpu?: boolean;
  seed: number;
  out: string;
  log?: (message: string) => void;
  onProgress?: (p: TrainProgress) => void;
}

export interface TrainProgress {
  readonly epoch: number;
  readonly epochs: number;
  readonly step: number;
  readonly stepsPerEpoch: number;
  readonly globalStep: number;
  readonly loss: number;
  readonly samplesPerSecond: number;
  readonly validationAccuracy?: number;
}

export interface EpochRecord {
  readonly epoch: number;
  readonly loss: number;
  /** Classifiers. */
  readonly validationAccuracy?: number;
  /** Detectors: mAP@0.5 on the validation scenes. */
  readonly validationMAP?: number;
  readonly samplesPerSecond: number;
}

export interface TrainReport {
  readonly model: string;
  readonly dataset: string;
  readonly backend: string;
  readonly adapter: string | undefined;
  readonly mode: string;
  readonly workers: number;
  readonly ps: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly optimizer: string;
  readonly learningRate: number;
  readonly seed: number;
  readonly steps: number;
  readonly samples: number;
  readonly trainSeconds: number;
  readonly samplesPerSecond: number;
  readonly task: 'classification' | 'detection';
  /** Classifiers: top-1 accuracy on the test split. */
  readonly testAccuracy?: number;
  /** Detectors: mAP@0.5 on the test scenes, and AP per class. */
  readonly mAP?: number;
  readonly perClassAP?: ReadonlyArray<number | undefined>;
  readonly testLoss: number;
  readonly validationAccuracy?: number;
  readonly validationMAP?: number;
  readonly history: readonly EpochRecord[];
  readonly modelPath: string;
}

/** The report fields of a test evaluation: testAccuracy, or mAP and perClassAP. */
export function testFields(e: Evaluation): Pick<TrainReport, 'testAccuracy' | 'mAP' | 'perClassAP' | 'testLoss'> {
  return e.task === 'detection' ? { mAP: e.mAP as number, perClassAP: e.perClassAP ?? [], testLoss: e.loss } : { testAccuracy: e.accuracy as number, testLoss: e.loss };
}

/** The report fields of a validation evaluation. */
export function validationFields(e: Evaluation): Pick<EpochRecord, 'validationAccuracy' | 'validationMAP'> {
  return e.task === 'detection' ? { validationMAP: e.mAP as number } : { validationAccuracy: e.accuracy as number };
}

/** The last epoch's validation score, for the report. */
export function lastValidation(history: readonly EpochRecord[]): Pick<EpochRecord, 'validationAccuracy' | 'validationMAP'> {
  const last = history.at(-1);
  return {
    ...(last?.validationAccuracy !== undefined ? { validationAccuracy: last.validationAccuracy } : {}),
    ...(last?.validationMAP !== undefined ? { validationMAP: last.validationMAP } : {}),
  };
}

/** "validation accuracy 97.10%" or "validation mAP@0.5 0.812". */
export function describeScore(e: Evaluation, split: string): string {
  return e.task === 'detection' ? `${split} mAP@0.5 ${(e.score).toFixed(3)}` : `${split} accuracy ${(e.score * 100).toFixed(2)}%`;
}

/** Refuse a zoo model trained on data of the other task (a detector on MNIST, a classifier on shapes). */
export function checkTask(model: string, dataset: Dataset): void {
  if (!isZooModel(model)) return;
  const task = zooEntry(model).task;
  if (task !== dataset.kind) {
    const models = [...ZOO.values()].filter((e) => e.task === dataset.kind).map((e) => e.name);
    throw new InvalidArgumentError(`${model} is a ${task} model and ${dataset.name} a ${dataset.kind} dataset: a ${dataset.kind} dataset needs a ${dataset.kind} model (${models.join(', ')}), or train ${model} on ${describeDatasetChoices(task)}`);
  }
}

/** Samples per epoch: --epoch-size, else the dataset's default (shapes: 5,000), else the whole split. */
export function epochLimit(dataset: Dataset, epochSize: number | undefined): { limit?: number } {
  const limit = epochSize ?? (dataset.kind === 'detection' ? dataset.defaultEpochSize : undefined);
  return limit !== undefined ? { limit } : {};
}

export function checkPositiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got ${value}`);
}

/**
 * Refuse, before any work starts, a --model that is neither a zoo name nor a
 * model file: a bare name is reported as not in the zoo (listing it), a path
 * as missing, a folder as a folder.
 */
export function checkModelSpec(spec: string): void {
  if (isZooModel(spec)) return;
  const zoo = zooNames().join(', ');
  if (existsSync(spec)) {
    checkUserFile(spec, { expected: `a tfjs model.json or a zoo name (${zoo})`, notFound: 'MODEL_NOT_FOUND', inFolder: ['model.json'] });
    return;
  }
  if (/[/\\]/.test(spec) || spec.startsWith('.') || spec.endsWith('.json')) {
    throw new ModelError('MODEL_NOT_FOUND', `${resolve(spec)}: no such model file; --model takes the path of a tfjs model.json or a zoo name (${zoo})`);
  }
  throw new ModelError('MODEL_UNKNOWN', `"${spec}" is not a zoo model (the zoo has ${zoo}) and no file of that name exists; --model also takes the path of a tfjs model.json`);
}

/** A zoo model by name, or a model.json to continue from. */
export async function createOrLoadModel(spec: string, seed: number): Promise<LayersModel> {
  checkModelSpec(spec);
  return isZooModel(spec) ? createModel(spec, { seed }) : loadLayersModelFile(spec);
}

export async function trainSingleProcess(options: TrainOptions): Promise<TrainReport> {
  const log = options.log ?? (() => {});
  checkModelSpec(options.model);
  checkPositiveInt('epochs', options.epochs);
  checkPositiveInt('batch size', options.batchSize);
  if (options.epochSize !== undefined) checkPositiveInt('epoch size', options.epochSize);
  const settings = optimizerSettings(options.optimizer, options.learningRate);
  const dataset = loadDataset(options.dataset);
  checkTask(options.model, dataset);
  const backend = await useBackend(options.backend, { requireGpu: options.requireGpu ?? false, log });
  const model = await createOrLoadModel(options.model, options.seed);
  const optimizer = createTfOptimizer(settings);
  const batchOptions = { batchSize: options.batchSize, seed: options.seed, ...epochLimit(dataset, options.epochSize) };
  const steps = stepsPerEpoch(dataset.train, batchOptions);
  const history: EpochRecord[] = [];
  let globalStep = 0;
  let samples = 0;
  let trainMs = 0;
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const started = performance.now();
    let epochSamples = 0;
    let loss = NaN;
    let step = 0;
    for (const batch of iterateBatches(dataset.train, { ...batchOptions, epoch })) {
      loss = await trainStep(model, optimizer, batch);
      if (!Number.isFinite(loss)) {
        throw new InvalidArgumentError(`training diverged: loss is ${loss} at epoch ${epoch + 1}, step ${step + 1}; lower --lr (now ${options.learningRate})`);
      }
      step++;
      globalStep++;
      epochSamples += batch.size;
      const elapsed = (performance.now() - started) / 1000;
      options.onProgress?.({ epoch, epochs: options.epochs, step, stepsPerEpoch: steps, globalStep, loss, samplesPerSecond: epochSamples / elapsed });
    }
    const epochMs = performance.now() - started;
    trainMs += epochMs;
    samples += epochSamples;
    // Precise batch norm, as the cluster chief does (ARCHITECTURE.md, @tamp/worker): the moving averages
    // trail weights that kept changing (a short run left ResNet-20 at 17% test accuracy, 81% recomputed).
    // No-op without batch norm. The test evaluation and the saved model use the last epoch's statistics.
    await recalibrateBatchNorm(model, recalibrationBatches(dataset.train, { batchSize: options.batchSize, seed: options.seed }));
    const val = await evaluateModel(model, dataset.validation);
    const record: EpochRecord = { epoch: epoch + 1, loss, ...validationFields(val), samplesPerSecond: epochSamples / (epochMs / 1000) };
    history.push(record);
    log(`epoch ${epoch + 1}/${options.epochs}: loss ${loss.toFixed(4)}, ${describeScore(val, 'validation')}, ${record.samplesPerSecond.toFixed(0)} samples/s`);
  }
  const test = await evaluateModel(model, dataset.test);
  const modelPath = await saveLayersModel(model, join(options.out, 'model'), { model: options.model, dataset: options.dataset, task: dataset.kind, classNames: dataset.classNames });
  const report: TrainReport = {
    model: options.model,
    dataset: dataset.name,
    backend: backend.name,
    adapter: backend.adapter,
    mode: 'single-process',
    workers: 1,
    ps: 0,
    epochs: options.epochs,
    batchSize: options.batchSize,
    optimizer: settings.name,
    learningRate: settings.learningRate,
    seed: options.seed,
    steps: globalStep,
    samples,
    trainSeconds: trainMs / 1000,
    samplesPerSecond: samples / (trainMs / 1000),
    task: dataset.kind,
    ...testFields(test),
    ...lastValidation(history),
    history,
    modelPath,
  };
  atomicWriteFile(join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  model.dispose();
  return report;
}
