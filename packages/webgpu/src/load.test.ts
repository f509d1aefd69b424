import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, InvalidArgumentError } from '@tamp/core';
import { gridOf } from './evaluate.js';
import { adapterFrom } from './load.js';

describe('typed errors of the inference entry points', () => {
  it('a runtime without navigator.gpu is BACKEND_UNAVAILABLE pointing at the other devices', async () => {
    const error = await adapterFrom(undefined, 'this browser').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as Error).message).toBe('this browser has no WebGPU (navigator.gpu is missing: WebGPU disabled or unsupported); use the wasm or cpu device');
  });

  it('mAP of a model whose output is no detector grid is INVALID_ARGUMENT saying what fits', () => {
    expect(gridOf([12, 12, 8])).toEqual({ grid: 12, numClasses: 3 });
    expect(() => gridOf([10])).toThrow(InvalidArgumentError);
    expect(() => gridOf([10])).toThrow('mAP needs a detector, whose output is [G, G, 5 + classes]; this model\'s is [10]: evaluate a classifier on classification data (accuracy)');
  });
});
