import { defineConfig } from 'vitest/config'

// Four projects, one per test layer (`npx vitest run --project unit`).
// unit and component files run in parallel, one child process each; they
// share no paths, ports or environment. integration and e2e start registries
// and boot a systemd container per file: they run afterwards (groupOrder 1),
// one file at a time in one child process (singleFork), so two suites never
// compete for the cores and each boot stays fast.
const serial = { sequence: { groupOrder: 1 }, poolOptions: { forks: { singleFork: true } } }

export default defineConfig({
  // .ts first: a stray `tsc` that emits .js beside the sources must not load a
  // second copy of a module (two SysctrError classes, instanceof failing).
  resolve: { extensions: ['.ts', '.mts', '.mjs', '.js', '.json'] },
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 180_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'component', include: ['test/component/**/*.test.ts'], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'], ...serial } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], ...serial } },
    ],
  },
})
