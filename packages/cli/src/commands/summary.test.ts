import { describe, expect, it } from 'vitest';
import type { TrainReport } from '@tamp/core/node';
import { trainSummary } from './summary.js';

const base: TrainReport = {
  model: 'mlp-tiny',
  dataset: 'mnist',
  backend: 'wasm',
  adapter: undefined,
  mode: 'sync',
  workers: 2,
  ps: 2,
  epochs: 1,
  batchSize: 64,
  optimizer: 'adam',
  learningRate: 0.001,
  seed: 1,
  steps: 20,
  samples: 2560,
  trainSeconds: 10,
  samplesPerSecond: 256,
  task: 'classification',
  testAccuracy: 0.5,
  testLoss: 1,
  validationAccuracy: 0.5,
  history: [],
  modelPath: '/tmp/model/model.json',
};

describe('trainSummary', () => {
  it('says what faults cost: refused non-finite updates and each recovery', () => {
    const text = trainSummary({
      ...base,
      nonFiniteUpdates: 3,
      recoveries: [{ role: 'ps', index: 1, cause: 'restarted without its state', resumedAfterSeconds: 2.5, restoredStep: 8, stepsLost: 4 }],
    });
    expect(text).toMatch(/non-finite updates\s+3 refused/);
    expect(text).toMatch(/recovered\s+ps 1 \(restarted without its state\): state restored after 2\.5 s, back to step 8, 4 step\(s\) redone/);
  });

  it('says a restarted chief took the job over, nothing redone', () => {
    const text = trainSummary({ ...base, recoveries: [{ role: 'chief', index: 0, cause: 'restarted; took over the running job', resumedAfterSeconds: 6.2, restoredStep: 9, stepsLost: 0 }] });
    expect(text).toMatch(/recovered\s+chief \(restarted; took over the running job\): answering again after 6\.2 s, at step 9, nothing redone/);
  });

  it('says whether a lost worker came back, and that nothing was redone either way', () => {
    const text = trainSummary({
      ...base,
      recoveries: [
        { role: 'worker', index: 1, cause: 'lost: silent for 10.4 s; restarted', resumedAfterSeconds: 14.2, restoredStep: 57, stepsLost: 0 },
        { role: 'worker', index: 0, cause: 'lost: silent for 12.0 s; not back', resumedAfterSeconds: null, restoredStep: null, stepsLost: 0 },
      ],
    });
    expect(text).toMatch(/recovered\s+worker 1 \(lost: silent for 10\.4 s; restarted\): live again after 14\.2 s, at step 57, nothing redone/);
    expect(text).toMatch(/lost\s+worker 0 \(lost: silent for 12\.0 s; not back\): the job went on without it, nothing redone/);
  });

  it("says which batches a lost worker left to the others, and any never trained", () => {
    expect(trainSummary({ ...base, batchesPlanned: 60, batchesTrained: 60, batchesLost: 0, batchesReassigned: 4 })).toMatch(/batches\s+60 of 60 trained; 4 a lost worker held were trained by the others$/m);
    expect(trainSummary({ ...base, batchesPlanned: 60, batchesTrained: 52, batchesLost: 8, batchesReassigned: 0 })).toMatch(/; 8 never trained \(no worker was left\)/);
    expect(trainSummary({ ...base, batchesPlanned: 60, batchesTrained: 60, batchesLost: 0, batchesReassigned: 0 })).not.toMatch(/batches/);
  });

  it('adds no fault rows to a job without faults', () => {
    expect(trainSummary({ ...base, nonFiniteUpdates: 0, recoveries: [] })).not.toMatch(/non-finite|recovered/);
    expect(trainSummary(base)).not.toMatch(/non-finite|recovered/);
  });
});
