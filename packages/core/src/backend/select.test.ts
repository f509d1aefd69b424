import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../errors.js';
import { type BackendCandidate, selectBackend } from './select.js';
import { activateTfBackend, cpuCandidate } from './tfjs-backends.js';

// A backend that probes fine but that tfjs cannot bring up: no factory of that name is registered.
const unregistered: BackendCandidate<string> = {
  name: 'unregistered',
  probe: async () => ({ available: true, gpu: false, software: false, adapter: 'nothing' }),
  activate: () => activateTfBackend('tamp-unregistered'),
};

const WHY = "tfjs could not initialise the tamp-unregistered backend: Backend name 'tamp-unregistered' not found in registry";

describe('backend selection when a backend fails to start', () => {
  it('tfjs refusing a backend is a typed BACKEND_UNAVAILABLE error', async () => {
    const error = await activateTfBackend('tamp-unregistered').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as Error).message).toBe(WHY);
  });

  it('auto passes over it to the next candidate, saying why', async () => {
    const logs: string[] = [];
    const selected = await selectBackend<string>({ requested: 'auto', candidates: [unregistered, cpuCandidate()], log: (m) => logs.push(m) });
    expect(selected.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(selected.skipped).toEqual([{ name: 'unregistered', reason: `failed to start: ${WHY}` }]);
    expect(logs).toContain(`backend unregistered: skipped (failed to start: ${WHY})`);
  });

  it('named explicitly, it is refused listing what is available', async () => {
    const error = await selectBackend<string>({ requested: 'unregistered', candidates: [unregistered, cpuCandidate()] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as Error).message).toBe(`backend "unregistered" is not available: failed to start: ${WHY}. Available here: cpu (or use auto).`);
  });
});
