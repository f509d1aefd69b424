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
