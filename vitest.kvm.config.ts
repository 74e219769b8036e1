import { defineConfig } from 'vitest/config'

// The kvm-backend suite: needs a usable /dev/kvm. `npm run test:kvm` runs it directly where the
// host has one, and otherwise inside an outer QEMU-TCG guest with nested SVM (test/kvm/run.mjs).
export default defineConfig({
  test: {
    include: ['test/kvm/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    fileParallelism: false,
    reporters: ['default', './test/helpers/summary-reporter.ts', './test/kvm/progress-reporter.ts'],
  },
})
