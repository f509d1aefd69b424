import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createOutput } from '../output.js';
import { type ClusterStatus, clusterProgress } from './cluster-progress.js';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  const out = createOutput({ json: false, verbose: false, stderr: stream as unknown as NodeJS.WriteStream });
  return { out, lines: () => text.trimEnd().split('\n') };
}

const status = (globalStep: number): ClusterStatus => ({ globalStep, totalSteps: 10, epoch: 0, epochs: 1, samplesPerSecond: globalStep * 10, loss: 1, validationAccuracy: 0 });

describe('local cluster progress', () => {
  it('says once what it waits for instead of printing "done":0 lines, then shows the steps', async () => {
    const { out, lines } = capture();
    const onProgress = clusterProgress(out, 2);
    for (const step of [0, 0, 0, 0, 5, 10]) onProgress(status(step));
    await new Promise((resolve) => setImmediate(resolve));
    const all = lines();
    expect(all[0]).toBe('waiting for the 2 workers to join and take their first step (each loads the dataset and starts its backend first)');
    expect(all.filter((l) => l.startsWith('waiting'))).toHaveLength(1);
    const progress = all.slice(1).map((l) => (JSON.parse(l) as { progress: { done: number; label: string } }).progress);
    expect(progress.map((p) => p.done)).toEqual([5, 10]);
    expect(progress[0]?.label).toBe('epoch 1/1');
  });

  it('waits at a resumed job\'s checkpoint step the same way', async () => {
    const { out, lines } = capture();
    const onProgress = clusterProgress(out, 1, { indent: '  ' });
    for (const step of [40, 40, 41]) onProgress(status(step));
    await new Promise((resolve) => setImmediate(resolve));
    const all = lines();
    expect(all[0]).toBe('  waiting for the worker to join and take its first step (each loads the dataset and starts its backend first)');
    expect(all).toHaveLength(2);
    expect(JSON.parse(all[1] as string)).toMatchObject({ progress: { done: 41, label: 'epoch 1/1' } });
  });

  it('takes the chief\'s progress too (no validation figure before the first epoch ends)', async () => {
    const { out, lines } = capture();
    const onProgress = clusterProgress(out, 3);
    const { validationAccuracy: _, ...early } = status(0);
    onProgress(early);
    onProgress({ ...status(10), epoch: 1, validationAccuracy: 0.9 });
    await new Promise((resolve) => setImmediate(resolve));
    const all = lines();
    expect(all[0]).toMatch(/^waiting for the 3 workers to join/);
    expect(JSON.parse(all[1] as string)).toMatchObject({ progress: { done: 10, 'val acc': '90.00%' } });
  });
});
