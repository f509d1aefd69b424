import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.js';
import { SHAPE_CLASSES, renderScene, sceneSeed, shapesDataset } from './shapes.js';

describe('shapes scenes', () => {
  it('are deterministic under a seed, and differ between seeds and splits', () => {
    const a = renderScene(sceneSeed(1, 'test', 3));
    const b = renderScene(sceneSeed(1, 'test', 3));
    expect(Buffer.from(a.pixels).equals(Buffer.from(b.pixels))).toBe(true);
    expect(a.objects).toEqual(b.objects);
    expect(Buffer.from(renderScene(sceneSeed(2, 'test', 3)).pixels).equals(Buffer.from(a.pixels))).toBe(false);
    expect(sceneSeed(1, 'train', 3)).not.toBe(sceneSeed(1, 'test', 3));
  });

  it('draws 1 to 4 objects of every class, inside the image, overlapping only a little', () => {
    const counts = new Array<number>(SHAPE_CLASSES.length).fill(0);
    let overlapping = 0;
    for (let i = 0; i < 200; i++) {
      const s = renderScene(sceneSeed(7, 'train', i));
      expect(s.pixels).toHaveLength(96 * 96 * 3);
      expect(s.objects.length).toBeGreaterThanOrEqual(1);
      expect(s.objects.length).toBeLessThanOrEqual(4);
      for (const o of s.objects) {
        counts[o.label] = (counts[o.label] as number) + 1;
        expect(o.x1).toBeGreaterThanOrEqual(0);
        expect(o.y1).toBeGreaterThanOrEqual(0);
        expect(o.x2).toBeLessThanOrEqual(1);
        expect(o.y2).toBeLessThanOrEqual(1);
        expect((o.x2 - o.x1) * 96).toBeGreaterThan(8);
      }
      for (let p = 0; p < s.objects.length; p++) {
        for (let q = p + 1; q < s.objects.length; q++) {
          const [a, b] = [s.objects[p]!, s.objects[q]!];
          if (Math.min(a.x2, b.x2) > Math.max(a.x1, b.x1) && Math.min(a.y2, b.y2) > Math.max(a.y1, b.y1)) overlapping++;
        }
      }
    }
    for (const c of counts) expect(c).toBeGreaterThan(80);
    expect(overlapping).toBeGreaterThan(0);
  });

  it('paints each object so it stands out: its centre differs from the background beside its box', () => {
    let checked = 0;
    let distinct = 0;
    for (let i = 0; i < 100; i++) {
      const s = renderScene(sceneSeed(3, 'validation', i));
      const at = (x: number, y: number) => [0, 1, 2].map((c) => s.pixels[(Math.round(y) * 96 + Math.round(x)) * 3 + c] as number);
      for (const o of s.objects) {
        const alone = s.objects.every((p) => p === o || p.x2 < o.x1 - 0.05 || p.x1 > o.x2 + 0.05 || p.y2 < o.y1 || p.y1 > o.y2);
        const beside = o.x1 * 96 - 3;
        if (!alone || beside < 0) continue;
        const cy = ((o.y1 + o.y2) / 2) * 96;
        const inside = at(((o.x1 + o.x2) / 2) * 96, cy);
        const outside = at(beside, cy);
        checked++;
        if (Math.hypot(...inside.map((v, c) => v - (outside[c] as number))) > 40) distinct++;
      }
    }
    expect(checked).toBeGreaterThan(50);
    expect(distinct / checked).toBeGreaterThan(0.85);
  });
});

describe('shapes splits', () => {
  it('refuse a scene index outside the split with INVALID_ARGUMENT', () => {
    const test = shapesDataset(1).test;
    expect(() => test.scene(200)).toThrow(InvalidArgumentError);
    expect(() => test.scene(-1)).toThrow('scene -1 is outside the test split: use a whole number in [0, 200)');
  });
});
