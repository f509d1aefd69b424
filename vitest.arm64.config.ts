import { defineConfig } from 'vitest/config';

// pnpm test:arm64: the edge image's arm64 build under qemu user-mode
// emulation (test/arm64.test.ts). One file; its inferences run in its
// beforeAll, two processes at a time, so the hook's limit is generous: an
// emulated WebGPU inference spends about a minute of CPU in SwiftShader's
// pipeline compiler, and a loaded machine stretches that.
export default defineConfig({
  test: {
    name: 'arm64',
    include: ['test/arm64.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 3_600_000,
  },
});
