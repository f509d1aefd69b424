import { defineConfig } from 'vitest/config';

// Three groups, one after the other (ARCHITECTURE.md, "Tests"):
// 1. unit tests beside the code, in parallel;
// 2. tests that spawn processes or open ports (test/ and *.serial.test.ts),
//    two files at a time: each must pass on a busy machine anyway (they
//    assert on counts and states, and make slowness happen by construction),
//    and half their time is waiting on timeouts and step delays;
// 3. tests whose subject is time or bandwidth itself (a link's rate, a cut
//    shorter or longer than a timeout, a probe's measurement) or a browser's
//    software GPU, one file at a time with nothing else running.
const EXCLUSIVE = ['test/netlab.test.ts', 'test/link-cut.test.ts', 'test/wire-auto.test.ts', 'test/demos.test.ts', 'test/browser-webgpu.test.ts'];
const PROCESS_TESTS = ['test/**/*.test.ts', 'packages/*/src/**/*.serial.test.ts'];
// The emulated arm64 build has its own command and setup (pnpm test:arm64, vitest.arm64.config.ts).
const NOT_HERE = ['**/node_modules/**', 'test/arm64.test.ts'];

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
          include: PROCESS_TESTS,
          exclude: [...NOT_HERE, ...EXCLUSIVE],
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
      {
        test: {
          name: 'exclusive',
          include: EXCLUSIVE,
          exclude: NOT_HERE,
          fileParallelism: false,
          sequence: { groupOrder: 2 },
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
