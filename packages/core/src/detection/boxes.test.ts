import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Detection, detectionsDiffer, iou, nonMaxSuppression } from './boxes.js';
import { decodeGrid, encodeTargets } from './grid.js';

describe('iou', () => {
  it('matches hand computations', () => {
    expect(iou({ x1: 0, y1: 0, x2: 2, y2: 2 }, { x1: 1, y1: 1, x2: 3, y2: 3 })).toBeCloseTo(1 / 7, 12);
    expect(iou({ x1: 0, y1: 0, x2: 1, y2: 1 }, { x1: 0, y1: 0, x2: 1, y2: 1 })).toBe(1);
    expect(iou({ x1: 0, y1: 0, x2: 1, y2: 1 }, { x1: 1, y1: 0, x2: 2, y2: 1 })).toBe(0);
    expect(iou({ x1: 0, y1: 0, x2: 0, y2: 0 }, { x1: 0, y1: 0, x2: 0, y2: 0 })).toBe(0);
  });
});

describe('nonMaxSuppression', () => {
  it('keeps the best of overlapping boxes of a class, and boxes of other classes', () => {
    const d: Detection[] = [
      { x1: 0, y1: 0, x2: 1, y2: 1, label: 0, score: 0.8 },
      { x1: 0.05, y1: 0, x2: 1, y2: 1, label: 0, score: 0.9 },
      { x1: 0, y1: 0, x2: 1, y2: 1, label: 1, score: 0.5 },
      { x1: 2, y1: 2, x2: 3, y2: 3, label: 0, score: 0.1 },
    ];
    expect(nonMaxSuppression(d).map((x) => x.score)).toEqual([0.9, 0.5, 0.1]);
    expect(nonMaxSuppression(d, { classAgnostic: true }).map((x) => x.score)).toEqual([0.9, 0.1]);
    expect(nonMaxSuppression(d, { maxDetections: 1 })).toHaveLength(1);
  });

  it('does not depend on the order of its input (property)', () => {
    const detection = fc.record({
      x1: fc.integer({ min: 0, max: 8 }),
      y1: fc.integer({ min: 0, max: 8 }),
      w: fc.integer({ min: 1, max: 4 }),
      h: fc.integer({ min: 1, max: 4 }),
      label: fc.integer({ min: 0, max: 2 }),
      score: fc.integer({ min: 1, max: 5 }),
    }).map((r) => ({ x1: r.x1 / 10, y1: r.y1 / 10, x2: (r.x1 + r.w) / 10, y2: (r.y1 + r.h) / 10, label: r.label, score: r.score / 5 }));
    fc.assert(
      fc.property(fc.array(detection, { maxLength: 25 }), fc.integer(), (ds, seed) => {
        const shuffled = [...ds].sort((a, b) => ((a.x1 * 31 + b.y2 * 17 + seed) % 7) - 3);
        expect(nonMaxSuppression(shuffled)).toEqual(nonMaxSuppression(ds));
      }),
      { numRuns: 300, seed: 5 },
    );
  });
});

describe('the detector grid', () => {
  it('encodes an object in the cell of its centre and decodes it back', () => {
    const grid = 4;
    const objects = [[{ x1: 0.3, y1: 0.55, x2: 0.45, y2: 0.9, label: 2 }]];
    const t = encodeTargets(objects, { grid, numClasses: 3 });
    // Centre (0.375, 0.725): cell x 1, y 2.
    const cell = 2 * grid + 1;
    expect(t.objectness[cell]).toBe(1);
    expect(t.objectness.reduce((a, b) => a + b, 0)).toBe(1);
    expect(t.classes[cell]).toBe(2);
    const [ox, oy, w, h] = Array.from(t.boxes.subarray(cell * 4, cell * 4 + 4));
    expect([ox, oy, w, h].map((v) => Number((v as number).toFixed(6)))).toEqual([0.5, 0.9, 0.15, 0.35]);
    // Raw outputs that reproduce those targets decode to the same box.
    const logit = (p: number) => Math.log(p / (1 - p));
    const out = new Float32Array(grid * grid * 8).fill(-10);
    out.set([10, logit(ox as number), logit(oy as number), logit(w as number), logit(h as number), -5, -5, 5], cell * 8);
    const [found] = decodeGrid(out, 1, { grid, numClasses: 3 });
    expect(found).toHaveLength(1);
    expect(found?.[0]?.label).toBe(2);
    for (const k of ['x1', 'y1', 'x2', 'y2'] as const) expect(found?.[0]?.[k]).toBeCloseTo(objects[0]![0]![k], 4);
  });

  it('keeps the larger of two objects centred in one cell, and counts the collision', () => {
    const t = encodeTargets([[{ x1: 0.1, y1: 0.1, x2: 0.2, y2: 0.2, label: 0 }, { x1: 0.05, y1: 0.05, x2: 0.25, y2: 0.25, label: 1 }]], { grid: 2, numClasses: 2 });
    expect(t.collisions).toBe(1);
    expect(t.classes[0]).toBe(1);
  });
});

describe('detectionsDiffer', () => {
  const box = (label: number, x1: number, score = 0.9): Detection => ({ label, x1, y1: 0.1, x2: x1 + 0.2, y2: 0.3, score });
  it('accepts equal lists and differences within the tolerance', () => {
    expect(detectionsDiffer([box(1, 0.1), box(2, 0.5)], [box(1, 0.1), box(2, 0.5)])).toBeUndefined();
    expect(detectionsDiffer([box(1, 0.1005)], [box(1, 0.1)])).toBeUndefined();
  });
  it('names the first difference: count, label, coordinate, score, NaN', () => {
    expect(detectionsDiffer([box(1, 0.1)], [box(1, 0.1), box(2, 0.5)])).toBe('1 boxes, expected 2');
    expect(detectionsDiffer([box(1, 0.1), box(3, 0.5)], [box(1, 0.1), box(2, 0.5)])).toBe('box 1 has label 3, expected 2');
    expect(detectionsDiffer([box(1, 0.11)], [box(1, 0.1)])).toMatch(/^box 0 x1 is 0.11, expected 0.1/);
    expect(detectionsDiffer([box(1, 0.1, 0.5)], [box(1, 0.1, 0.9)])).toMatch(/^box 0 score/);
    expect(detectionsDiffer([box(1, NaN)], [box(1, 0.1)])).toMatch(/^box 0 x1 is NaN/);
  });
});
