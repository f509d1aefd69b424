import { describe, expect, it } from 'vitest';
import { chooseWire } from './auto.js';

describe('--wire auto: chooseWire', () => {
  it('keeps fp32 when it is fastest, or when compression saves under a fifth or a millisecond', () => {
    expect(chooseWire({ fp32: 7, fp16: 32, int8: 38 }, 101_800).push).toEqual({ kind: 'fp32' });
    const close = chooseWire({ fp32: 10, fp16: 9, int8: 8.5 }, 101_800);
    expect(close.pull).toEqual({ kind: 'fp32' });
    expect(close.reason).toMatch(/int8 would save only 1.5 ms \(15%\)/);
    expect(chooseWire({ fp32: 1.5, fp16: 1, int8: 0.8 }, 1_000).push).toEqual({ kind: 'fp32' }); // 47% but under 1 ms
  });

  it('takes the fastest compressed codec both ways when it pays, saying what it measured', () => {
    const c = chooseWire({ fp32: 170, fp16: 90, int8: 50 }, 1_064_840);
    expect(c.push).toEqual({ kind: 'int8' });
    expect(c.pull).toEqual({ kind: 'int8' });
    expect(c.reason).toMatch(/^int8 both ways: pulls of 1.06 MB of parameters took fp32 170.0 ms, fp16 90.0 ms, int8 50.0 ms \(fp32 ≈ 50 Mbit\/s\); int8 saves 71%/);
    expect(chooseWire({ fp32: 170, fp16: 60, int8: 80 }, 1_064_840).push).toEqual({ kind: 'fp16' });
  });
});
