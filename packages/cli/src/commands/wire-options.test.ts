import { describe, expect, it } from 'vitest';
import { UsageError } from '@tamp/core';
import { wireSettings } from './shared-options.js';

describe('wire flags and their environment variables', () => {
  it('default to fp32 both ways; flags win over TAMP_WIRE_*', () => {
    expect(wireSettings({}, {})).toEqual({ push: 'fp32', pull: 'fp32' });
    expect(wireSettings({}, { TAMP_WIRE_PUSH: 'topk:0.01', TAMP_WIRE_PULL: 'int8', TAMP_WIRE_WARMUP: '0', TAMP_WIRE_CLIP: '5', TAMP_WIRE_NO_FEEDBACK: '1' })).toEqual({
      push: 'topk:0.01',
      pull: 'int8',
      warmupSteps: 0,
      clipNorm: 5,
      errorFeedback: false,
    });
    expect(wireSettings({ 'wire-push': 'fp16' }, { TAMP_WIRE_PUSH: 'int8' }).push).toBe('fp16');
    expect(wireSettings({}, { TAMP_WIRE: 'auto' })).toEqual({ push: 'auto', pull: 'auto' });
    expect(wireSettings({ 'wire-push': 'topk:0.01', 'wire-no-momentum-correction': true }, {})).toEqual({ push: 'topk:0.01', pull: 'fp32', momentumCorrection: false });
    expect(wireSettings({}, { TAMP_WIRE: 'auto', TAMP_WIRE_NO_MOMENTUM_CORRECTION: '1' })).toEqual({ push: 'auto', pull: 'auto', momentumCorrection: false });
    expect(wireSettings({ 'wire-push': 'topk:0.01', 'wire-no-adam-correction': true }, {})).toEqual({ push: 'topk:0.01', pull: 'fp32', adamCorrection: false });
    expect(wireSettings({}, { TAMP_WIRE_PUSH: 'topk:0.01', TAMP_WIRE_NO_ADAM_CORRECTION: 'yes' })).toEqual({ push: 'topk:0.01', pull: 'fp32', adamCorrection: false });
    expect(wireSettings({ 'wire-push': 'topk:0.01', 'wire-sparse-biases': true }, {})).toEqual({ push: 'topk:0.01', pull: 'fp32', sparseBiases: true });
    expect(wireSettings({}, { TAMP_WIRE_PUSH: 'topk:0.01', TAMP_WIRE_SPARSE_BIASES: '1' })).toEqual({ push: 'topk:0.01', pull: 'fp32', sparseBiases: true });
  });

  it('refuses what cannot work, saying what to change', () => {
    expect(() => wireSettings({ 'wire-pull': 'topk:0.1' }, {})).toThrow(/--wire-pull .* fp32, fp16, int8/);
    expect(() => wireSettings({ wire: 'auto', 'wire-push': 'int8' }, {})).toThrow(/drop --wire-push\/--wire-pull, or drop --wire auto/);
    expect(() => wireSettings({}, { TAMP_WIRE: 'fast' })).toThrow(UsageError);
    expect(() => wireSettings({ 'wire-clip': 5 }, {})).toThrow(/add --wire-push topk:F/);
    expect(() => wireSettings({ 'wire-push': 'int8', 'wire-sparse-biases': true }, {})).toThrow(/--wire-sparse-biases .* add --wire-push topk:F/);
    expect(() => wireSettings({}, { TAMP_WIRE_WARMUP: 'soon' })).toThrow(/whole number of steps/);
  });
});
