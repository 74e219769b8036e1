import { defineConfig } from 'vitest/config'

// The project's own tests. Real guest boots are slow under TCG, so they get long timeouts and
// never run in parallel with each other (see test/helpers/guest.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Needs a usable /dev/kvm: `npm run test:kvm` (vitest.kvm.config.ts) runs these, nested if need be.
    exclude: ['test/kvm/**', 'test/fixtures/**', '**/node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    globalSetup: ['test/helpers/suite-tmpdir.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
})
