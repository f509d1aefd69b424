/**
 * Size budgets of the built demos, checked by `pnpm demo:build` and by
 * test/demos.test.ts. Set from what was measured on 2026-11-22 (see the
 * closing note of the demos issue), with headroom for small changes; raise
 * one only knowingly.
 */
export const BUDGETS = {
  digits: {
    // Measured 193.5 KiB gzipped (691 KiB raw) on 2026-11-22: the page, @tamp/webgpu's executor, @tamp/core's
    // preprocessing, and tfjs-core/-layers/-backend-wasm for the WASM fallback (split into chunks). ~12% headroom.
    jsGzipBytes: 220 * 1024,
    models: {
      // LeNet-5 is 1,724,320 fp32 bytes; compression part 2 reached 39.9x (42.2 KiB). 48 KiB allows a
      // retrained model to land a little bigger, and fails if the demo ships an int8-only (~4x) model.
      'compressed.tamp': 48 * 1024,
      // The fp32 model is the comparison the toggle offers: LeNet-5's weights plus model.json.
      'fp32/weights.bin': 1_724_320, // 431,080 parameters × 4 bytes
      'fp32/model.json': 8 * 1024,
    } as Record<string, number>,
  },
  objects: {
    // Measured 194.9 KiB gzipped: as digits, plus the scene generator and box decoding.
    jsGzipBytes: 220 * 1024,
    models: {
      // The shapes detector: 97,960 parameters, int8 (3.85x, 99.5 KiB).
      'detector.tamp': 104 * 1024,
    } as Record<string, number>,
  },
} as const;

export type DemoName = keyof typeof BUDGETS;
