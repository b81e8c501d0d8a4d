import { defineConfig } from 'vitest/config'

export default defineConfig({
  // .ts first: a stray `tsc` that emits .js beside the sources must not load a
  // second copy of a module (two SysctrError classes, instanceof failing).
  resolve: { extensions: ['.ts', '.mts', '.mjs', '.js', '.json'] },
  test: {
    include: ['test/**/*.test.ts'],
    // The e2e suites boot one systemd container each; run files one at a time so
    // two suites never compete for the 2 cores and the boot stays fast.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
})
