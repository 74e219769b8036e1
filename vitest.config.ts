import { defineConfig } from 'vitest/config'

// The project's own tests. Real guest boots are slow under TCG, so they get long timeouts and
// never run in parallel with each other (see test/helpers/guest.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
})
