import { describe, expect, it } from 'vitest';
import type { Detection } from '../detection/boxes.js';
import { InvalidArgumentError } from '../errors.js';
import { decodeGrid } from '../detection/grid.js';
import { accuracy } from './classification.js';
import { type LabelledBox, averagePrecision, meanAveragePrecision } from './detection.js';

const box = (x1: number, y1: number, x2: number, y2: number, label = 0): LabelledBox => ({ x1, y1, x2, y2, label });
const det = (b: LabelledBox, score: number): Detection => ({ ...b, score });

describe('averagePrecision (VOC, all points)', () => {
  it('is 1 for a perfect ranking and 0 with nothing found', () => {
    expect(averagePrecision([true, true], 2)).toBe(1);
    expect(averagePrecision([], 3)).toBe(0);
    expect(averagePrecision([false, false], 2)).toBe(0);
  });

  it('matches a hand computation: hits at ranks 1 and 3 of 3 objects', () => {
    // recall 1/3 at precision 1; recall 2/3 at precision 2/3; the third object never found.
    // Envelope: p(1/3) = 1, p(2/3) = 2/3. AP = 1/3 · 1 + 1/3 · 2/3 = 5/9.
    expect(averagePrecision([true, false, true], 3)).toBeCloseTo(5 / 9, 12);
  });

  it('uses the precision envelope: a late hit lifts earlier precision', () => {
    // ranks: miss, hit, hit with 2 objects: precision 0, 1/2, 2/3; envelope 2/3 for both recall steps.
    expect(averagePrecision([false, true, true], 2)).toBeCloseTo(2 / 3, 12);
  });
});

describe('meanAveragePrecision', () => {
  const truth = [[box(0.1, 0.1, 0.3, 0.3, 0), box(0.5, 0.5, 0.9, 0.9, 1)], [box(0.2, 0.2, 0.4, 0.4, 0)]];

  it('is 1 when every object is found once, whatever the scores', () => {
    const found = [[det(truth[0]![0]!, 0.3), det(truth[0]![1]!, 0.9)], [det(truth[1]![0]!, 0.6)]];
    const m = meanAveragePrecision(found, truth, 2);
    expect(m.mAP).toBe(1);
    expect(m.perClass).toEqual([1, 1]);
    expect([m.images, m.objects, m.detections]).toEqual([2, 3, 3]);
  });

  it('is 0 with no detections, and skips classes without objects', () => {
    const m = meanAveragePrecision([[], []], truth, 3);
    expect(m.mAP).toBe(0);
    expect(m.perClass).toEqual([0, 0, undefined]);
  });

  it('counts a duplicate as a false positive', () => {
    const t = [[box(0.1, 0.1, 0.5, 0.5)]];
    const m = meanAveragePrecision([[det(t[0]![0]!, 0.9), det(box(0.11, 0.1, 0.5, 0.5), 0.8)]], t, 1);
    // One object: found at rank 1 (recall 1, precision 1); the duplicate adds no recall: AP 1.
    expect(m.mAP).toBe(1);
    // The duplicate scored higher than the real match: rank 1 is a hit on the same box, rank 2 too? No: only one can match.
    const m2 = meanAveragePrecision([[det(box(0.11, 0.1, 0.5, 0.5), 0.95), det(t[0]![0]!, 0.9)]], t, 1);
    expect(m2.mAP).toBe(1);
  });

  it('requires IoU ≥ 0.5 and the right class', () => {
    const t = [[box(0, 0, 0.4, 0.4)]];
    // IoU of [0,0,0.4,0.4] and [0.1,0,0.5,0.4] is 0.3/0.5 = 0.6: a hit; shifted by 0.2 it is 0.2/0.6 = 1/3: a miss.
    expect(meanAveragePrecision([[det(box(0.1, 0, 0.5, 0.4), 0.9)]], t, 1).mAP).toBe(1);
    expect(meanAveragePrecision([[det(box(0.2, 0, 0.6, 0.4), 0.9)]], t, 1).mAP).toBe(0);
    expect(meanAveragePrecision([[det(box(0, 0, 0.4, 0.4, 1), 0.9)]], t, 2).mAP).toBe(0);
  });

  it('ranks across images in a crowded scene: hand-computed AP', () => {
    // Image 0: four objects of class 0 in a row; image 1: one object.
    const crowd = [[0, 1, 2, 3].map((i) => box(i * 0.25, 0, i * 0.25 + 0.2, 0.2)), [box(0.5, 0.5, 0.7, 0.7)]];
    const found = [
      [det(crowd[0]![0]!, 0.9), det(crowd[0]![1]!, 0.7), det(box(0.9, 0.9, 1, 1), 0.8), det(crowd[0]![3]!, 0.4)],
      [det(crowd[1]![0]!, 0.5)],
    ];
    // Ranked: 0.9 hit, 0.8 miss, 0.7 hit, 0.5 hit, 0.4 hit; 5 objects.
    // precision 1, 1/2, 2/3, 3/4, 4/5 → envelope 1, 4/5, 4/5, 4/5, 4/5 at recalls 1/5..4/5.
    // AP = 1/5 · 1 + 3/5 · 4/5 = 0.2 + 0.48 = 0.68.
    expect(meanAveragePrecision(found, crowd, 1).mAP).toBeCloseTo(0.68, 12);
  });
});

describe('metrics given mismatched inputs', () => {
  it('mAP and accuracy refuse lists of different lengths with INVALID_ARGUMENT', () => {
    expect(() => meanAveragePrecision([[]], [[], []], 3)).toThrow(InvalidArgumentError);
    expect(() => meanAveragePrecision([[]], [[], []], 3)).toThrow('mAP: 1 images of detections for 2 of ground truth; pass one list of detections per image');
    expect(() => accuracy([1, 2], [1])).toThrow(InvalidArgumentError);
    expect(() => accuracy([1, 2], [1])).toThrow('accuracy: 2 predictions for 1 labels; pass one prediction per label');
    expect(() => decodeGrid(new Float32Array(10), 1, { grid: 12, numClasses: 3 })).toThrow(InvalidArgumentError);
    expect(() => decodeGrid(new Float32Array(10), 1, { grid: 12, numClasses: 3 })).toThrow("decodeGrid: 10 values are not 1 × 12 × 12 × 8; pass the detector's whole output for the batch and its grid shape");
  });
});
