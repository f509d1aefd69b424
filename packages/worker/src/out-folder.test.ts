import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterError, FileError, optimizerSettings } from '@tamp/core';
import type { CheckpointManifest } from './checkpoints.js';
import { planChiefJob } from './chief-job.js';
import type { TrainingSettings } from './job-config.js';
import { checkResumeSettings, newestManifest, prepareOutFolder } from './out-folder.js';

const training: TrainingSettings = {
  model: 'mlp-tiny',
  dataset: 'mnist',
  epochs: 1,
  epochSize: 256,
  batchSize: 32,
  optimizer: optimizerSettings('adam', 0.001),
  mode: 'sync',
  staleness: 0,
  backupWorkers: 0,
  seed: 3,
};

function manifest(step: number, t: TrainingSettings = training): CheckpointManifest {
  return { format: 1, jobId: 'old-job', step, versions: ['1'], time: '', training: t, numWorkers: 2, checkpointEvery: 5, variables: [], parts: [], history: [], samples: 0 };
}

let out: string;
beforeEach(() => {
  out = mkdtempSync(join(tmpdir(), 'tamp-out-'));
});
afterEach(() => rmSync(out, { recursive: true, force: true }));

function writeCheckpoint(step: number): void {
  const dir = join(out, 'checkpoints', `step-${String(step).padStart(9, '0')}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest(step)));
}

describe('--out of a new cluster job', () => {
  it('an empty or missing folder is accepted', () => {
    expect(() => prepareOutFolder(out, false, () => {})).not.toThrow();
    expect(() => prepareOutFolder(join(out, 'new', 'deeper'), false, () => {})).not.toThrow();
  });

  it("refuses a folder holding another job's checkpoints, naming that job and how to go on", () => {
    writeCheckpoint(5);
    writeCheckpoint(10);
    mkdirSync(join(out, 'checkpoints', 'step-000000015')); // a save that never finished: no manifest
    expect(newestManifest(out)?.step).toBe(10);
    let caught: unknown;
    try {
      prepareOutFolder(out, false, () => {});
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ClusterError);
    expect((caught as ClusterError).code).toBe('CLUSTER_CONFIG');
    expect((caught as ClusterError).message).toMatch(/already holds a job's results of job "old-job" \(mlp-tiny on mnist, sync, adam, seed 3, step 10\): checkpoints\. Continue that job with --resume .*--overwrite/);
    expect(existsSync(join(out, 'checkpoints', 'step-000000010'))).toBe(true); // nothing deleted
  });

  it('refuses a report.json or model left by a job, and --overwrite deletes them (only them)', () => {
    writeFileSync(join(out, 'report.json'), '{}');
    mkdirSync(join(out, 'model'));
    writeFileSync(join(out, 'notes.txt'), 'mine');
    expect(() => prepareOutFolder(out, false, () => {})).toThrow(/already holds a job's results: model, report\.json/);
    const logged: string[] = [];
    prepareOutFolder(out, true, (m) => logged.push(m));
    expect(existsSync(join(out, 'report.json'))).toBe(false);
    expect(existsSync(join(out, 'model'))).toBe(false);
    expect(existsSync(join(out, 'notes.txt'))).toBe(true);
    expect(logged).toEqual([`--overwrite: deleted model, report.json under ${out}`]);
  });

  it('finds an unwritable --out before anything starts, with the real cause', () => {
    writeFileSync(join(out, 'a-file'), '');
    let caught: unknown;
    try {
      prepareOutFolder(join(out, 'a-file', 'run'), false, () => {});
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(FileError);
    expect((caught as FileError).message).toMatch(/a-file\/run: a part of this path is a file, not a folder/);
  });

  it('the chief refuses it before loading anything (planChiefJob)', async () => {
    writeCheckpoint(5);
    await expect(planChiefJob({ jobId: 'new-job', psAddresses: ['127.0.0.1:1'], numWorkers: 2, training, out }, () => {})).rejects.toThrow(/already holds a job's results of job "old-job"/);
  });
});

describe('resuming with settings given', () => {
  it('accepts none or the same model and dataset, and refuses another model or dataset with a typed error', () => {
    const m = manifest(10);
    expect(() => checkResumeSettings(out, m, undefined)).not.toThrow();
    expect(() => checkResumeSettings(out, m, { ...training, mode: 'async', epochs: 9 })).not.toThrow();
    let caught: unknown;
    try {
      checkResumeSettings(out, m, { ...training, model: 'lenet-5' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ClusterError);
    expect((caught as ClusterError).code).toBe('JOB_MISMATCH');
    expect((caught as ClusterError).message).toMatch(/checkpoint is of job "old-job" \(mlp-tiny on mnist.*\), whose model differ/);
  });
});
