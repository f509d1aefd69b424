import { defineConfig } from 'vitest/config';

// Two groups: unit tests beside the code run in parallel; tests that spawn
// processes, open ports or drive a browser (test/ and *.serial.test.ts) run
// one file at a time, after the unit tests.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts'],
          exclude: ['**/*.serial.test.ts', '**/node_modules/**'],
          sequence: { groupOrder: 0 },
          testTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'serial',
          include: ['test/**/*.test.ts', 'packages/*/src/**/*.serial.test.ts'],
          // The emulated arm64 build has its own command and setup (pnpm test:arm64, vitest.arm64.config.ts).
          exclude: ['**/node_modules/**', 'test/arm64.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
