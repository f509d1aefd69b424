import { describe, expect, it } from 'vitest';
import { type AutoCandidate, chooseWire, considerTopk, mayStillPay, probeWire } from './auto.js';

describe('--wire auto: chooseWire', () => {
  it('keeps fp32 when it is fastest, or when compression saves under a fifth or a millisecond', () => {
    expect(chooseWire({ fp32: 7, fp16: 32, int8: 38, int4: 36 }, 101_800).push).toEqual({ kind: 'fp32' });
    const close = chooseWire({ fp32: 10, fp16: 9, int8: 8.5, int4: 8.8 }, 101_800);
    expect(close.pull).toEqual({ kind: 'fp32' });
    expect(close.reason).toMatch(/int8 would save only 1.5 ms \(15%\)/);
    expect(chooseWire({ fp32: 1.5, fp16: 1, int8: 0.8, int4: 0.7 }, 1_000).push).toEqual({ kind: 'fp32' }); // 53% but under 1 ms
  });

  it('takes compression only when every round of it beat every round of fp32 by the margin', () => {
    // A busy loopback: one fp32 round hit a scheduling hiccup, so fp16's best looks 40% faster, but its slowest round was slower than fp32's fastest.
    const noisy = chooseWire({ fp32: 10, fp16: 6, int8: 12, int4: 13 }, 101_800, { fp32: 25, fp16: 11, int8: 30, int4: 31 });
    expect(noisy.push).toEqual({ kind: 'fp32' });
    expect(noisy.reason).toMatch(/fp32 10.0-25.0 ms, fp16 6.0-11.0 ms.*fp16 would save only -1.0 ms \(-10%, its slowest round against fp32's fastest\)/);
    // A slow link: int4's slowest round still saves 70% of fp32's fastest.
    const slow = chooseWire({ fp32: 170, fp16: 90, int8: 50, int4: 30 }, 1_064_840, { fp32: 180, fp16: 95, int8: 68, int4: 51 });
    expect(slow.push).toEqual({ kind: 'int4' });
    expect(slow.reason).toMatch(/int4 saves 70%/);
  });

  it('stops probing a codec once its slowest round cannot save the fifth and the millisecond against fp32\'s fastest', () => {
    // Loopback after one round: fp16 and int4 were slower than fp32; int8's first pull (no reference yet) did not count.
    const loopback = { fp32: 11, fp16: 23, int8: 0, int4: 40 };
    expect((['fp32', 'fp16', 'int8', 'int4'] as const).filter((c) => mayStillPay(c, 11, loopback))).toEqual(['fp32', 'int8']);
    // A slow link: every compressed codec still pays; at the margin exactly it still does, past it not.
    const slow = { fp32: 180, fp16: 95, int8: 68, int4: 51 };
    expect((['fp32', 'fp16', 'int8', 'int4'] as const).every((c) => mayStillPay(c, 170, slow))).toBe(true);
    expect(mayStillPay('int8', 10, { fp32: 10, fp16: 0, int8: 8, int4: 0 })).toBe(true);
    expect(mayStillPay('int8', 10, { fp32: 10, fp16: 0, int8: 8.01, int4: 0 })).toBe(false);
    expect(mayStillPay('int8', 4, { fp32: 4, fp16: 0, int8: 3.1, int4: 0 })).toBe(false); // 22% but under 1 ms
  });

  it('probes each codec in turn, drops those that cannot pay, and stops when only fp32 is left', async () => {
    /** A pull that takes `ms[kind]`'s next entry on a fake clock (the last one repeats), recording the order. */
    const probe = async (ms: Record<AutoCandidate, number[]>) => {
      let clock = 0;
      const pulls: AutoCandidate[] = [];
      const { choice, times } = await probeWire(
        (kind) => {
          const n = pulls.filter((k) => k === kind).length;
          const list = ms[kind];
          clock += list[Math.min(n, list.length - 1)] as number;
          pulls.push(kind);
          return Promise.resolve(1_064_840);
        },
        () => clock,
      );
      return { choice, times, pulls };
    };
    // Loopback: fp16 and int4 lose in round 1; int8's first pull (whole values) does not count, its second loses: six pulls, fp32.
    const loopback = await probe({ fp32: [11, 10, 12], fp16: [23], int8: [9, 15], int4: [40] });
    expect(loopback.pulls).toEqual(['fp32', 'fp16', 'int8', 'int4', 'fp32', 'int8']);
    expect(loopback.choice.push).toEqual({ kind: 'fp32' });
    expect(loopback.times).toEqual({ fp32: 10, fp16: 23, int8: 9, int4: 40 });
    // A slow link: every codec keeps paying, so all three rounds run, and int4 is fastest.
    const slow = await probe({ fp32: [170, 175, 172], fp16: [90], int8: [160, 52, 50], int4: [30, 32, 31] });
    expect(slow.pulls).toHaveLength(12);
    expect(slow.choice.push).toEqual({ kind: 'int4' });
    // fp16 pays in round 1 and then hits a hiccup: dropped after round 2, the others go on.
    const hiccup = await probe({ fp32: [170, 170, 170], fp16: [90, 160], int8: [160, 52, 50], int4: [30, 32, 31] });
    expect(hiccup.pulls.filter((k) => k === 'fp16')).toHaveLength(2);
    expect(hiccup.pulls).toHaveLength(11);
  });

  it('takes the fastest compressed codec both ways when it pays, saying what it measured', () => {
    const c = chooseWire({ fp32: 170, fp16: 90, int8: 50, int4: 30 }, 1_064_840);
    expect(c.push).toEqual({ kind: 'int4' });
    expect(c.pull).toEqual({ kind: 'int4' });
    expect(c.reason).toMatch(/^int4 both ways: pulls of 1.06 MB of parameters took fp32 170.0 ms, fp16 90.0 ms, int8 50.0 ms, int4 30.0 ms \(fp32 ≈ 50 Mbit\/s\); int4 saves 82%/);
    // Where quantizing costs more than the bytes it saves (a fast link, a slow CPU), a wider codec wins.
    expect(chooseWire({ fp32: 170, fp16: 90, int8: 50, int4: 55 }, 1_064_840).push).toEqual({ kind: 'int8' });
    expect(chooseWire({ fp32: 170, fp16: 60, int8: 80, int4: 85 }, 1_064_840).push).toEqual({ kind: 'fp16' });
  });

  it('takes top-k pushes only after int8 or int4, when that codec would still spend over twice the compute on the wire', () => {
    const times = { fp32: 2800, fp16: 1400, int8: 700, int4: 800 };
    const int8 = chooseWire(times, 1_066_440);
    expect(int8.push).toEqual({ kind: 'int8' });
    // 1400 ms a step in int8 against 400 ms of compute: top-k pushes, int8 pulls, and the reason says both.
    const slow = considerTopk(int8, times, 400, 'momentum correction on');
    expect(slow.push).toEqual({ kind: 'topk', fraction: 0.01 });
    expect(slow.pull).toEqual({ kind: 'int8' });
    expect(slow.reason).toMatch(/int8 saves 75%.*then pushes as topk:0.01: int8 puts about 1400 ms a step on the wire \(a push and a pull\) against 400 ms of compute in the first step, over 2x.*\(momentum correction on\)$/);
    // 1400 ms against 700 ms: exactly 2x is not over it.
    const enough = considerTopk(int8, times, 700, '');
    expect(enough.push).toEqual({ kind: 'int8' });
    expect(enough.reason).toMatch(/top-k not needed: int8 puts about 1400 ms .* against 700 ms .*, under 2x$/);
    // int4 chosen: its own time decides, and pulls stay int4.
    const faster = { ...times, int4: 400 };
    const int4 = chooseWire(faster, 1_066_440);
    expect(int4.push).toEqual({ kind: 'int4' });
    const withTopk = considerTopk(int4, faster, 300, '');
    expect(withTopk.push).toEqual({ kind: 'topk', fraction: 0.01 });
    expect(withTopk.pull).toEqual({ kind: 'int4' });
    expect(withTopk.reason).toMatch(/int4 puts about 800 ms a step on the wire .* against 300 ms .*even in int4/);
    expect(considerTopk(int4, faster, 400, '').push).toEqual({ kind: 'int4' });
    // fp32 and fp16 choices are left alone whatever the compute: top-k only where int8 or int4 already paid.
    const loopback = chooseWire({ fp32: 7, fp16: 32, int8: 38, int4: 36 }, 101_800);
    expect(considerTopk(loopback, { fp32: 7, fp16: 32, int8: 38, int4: 36 }, 0.1, '')).toBe(loopback);
  });
});
