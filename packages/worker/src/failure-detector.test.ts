import { describe, expect, it } from 'vitest';
import { PhiAccrualDetector } from './failure-detector.js';

/** A detector fed heartbeats at the given gaps (ms) from time 0; returns it and the last arrival. */
function fed(gaps: readonly number[], timeoutMs = 2_000, expectedIntervalMs = 100): { d: PhiAccrualDetector; last: number } {
  const d = new PhiAccrualDetector({ timeoutMs, expectedIntervalMs }, 0);
  let t = 0;
  for (const g of gaps) d.heartbeat((t += g));
  return { d, last: t };
}

describe('phi-accrual failure detector (synthetic arrival times)', () => {
  it('phi grows with the silence and is small right after a heartbeat', () => {
    const { d, last } = fed(new Array<number>(50).fill(100));
    expect(d.meanMs).toBeCloseTo(100, 6);
    expect(d.phi(last + 50)).toBeLessThan(1);
    const phis = [100, 150, 200, 300].map((s) => d.phi(last + s));
    for (let i = 1; i < phis.length; i++) expect(phis[i]).toBeGreaterThan(phis[i - 1] as number);
    expect(d.phi(last + 300)).toBeGreaterThan(8);
  });

  it('never suspects before the timeout (floor), whatever phi says', () => {
    const { d, last } = fed(new Array<number>(50).fill(100));
    expect(d.phi(last + 1_999)).toBeGreaterThan(8);
    expect(d.suspect(last + 1_999)).toBe(false);
    expect(d.suspect(last + 2_001)).toBe(true);
  });

  it('gives a worker whose heartbeats came late and irregularly longer than one that beat like a clock', () => {
    const clock = fed(new Array<number>(50).fill(100), 3_000);
    // A loaded machine: gaps from 0.1 s to 2.9 s.
    const loaded = fed(Array.from({ length: 50 }, (_, i) => 100 + (i % 8) * 400), 3_000);
    const silence = 3_100;
    expect(clock.d.suspect(clock.last + silence)).toBe(true);
    expect(loaded.d.suspect(loaded.last + silence)).toBe(false);
    expect(loaded.d.phi(loaded.last + silence)).toBeLessThan(loaded.d.threshold);
    // It is suspected later, once its silence is improbable for its own history.
    let t = silence;
    while (!loaded.d.suspect(loaded.last + t)) t += 100;
    expect(t).toBeGreaterThan(silence);
    expect(t).toBeLessThan(loaded.d.ceilingMs);
  });

  it('suspects any worker silent for the ceiling (3× the timeout), however irregular its history', () => {
    const { d, last } = fed(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 100 : 5_000)));
    expect(d.ceilingMs).toBe(6_000);
    expect(d.suspect(last + 5_999)).toBe(false);
    expect(d.suspect(last + 6_000)).toBe(true);
  });

  it('keeps only the last windowSize gaps: a machine that calmed down is judged by its recent beats', () => {
    const d = new PhiAccrualDetector({ timeoutMs: 2_000, expectedIntervalMs: 100, windowSize: 10 }, 0);
    let t = 0;
    for (let i = 0; i < 10; i++) d.heartbeat((t += i % 2 === 0 ? 500 : 2_500));
    expect(d.suspect(t + 3_000)).toBe(false);
    for (let i = 0; i < 10; i++) d.heartbeat((t += 100));
    expect(d.meanMs).toBeCloseTo(100, 6);
    expect(d.suspect(t + 3_000)).toBe(true);
  });

  it('ignores a heartbeat that is not later than the last one', () => {
    const { d, last } = fed([100, 100]);
    const before = d.meanMs;
    d.heartbeat(last);
    d.heartbeat(last - 50);
    expect(d.meanMs).toBe(before);
    expect(d.silence(last + 10)).toBe(10);
  });
});
