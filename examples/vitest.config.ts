// A project with ordinary unit tests and scheduler tests side by side: `vitest --project sched`
// runs only the guests, `vitest` runs both (unit tests stay in Vitest's normal pool).
// `vitest bench --project sched` runs the *.sched.bench.ts files; SCHEDULER picks the scheduler of
// files without one in their docblock (unset: the kernel's EEVDF).

import { ktstr } from 'ktstr/plugin'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  plugins: [ktstr({ topology: '1n1l2c1t', memory: 1024, scheduler: process.env.SCHEDULER || undefined })],
  test: {
    projects: [
      { extends: true, test: { name: 'unit', include: ['**/*.test.ts'], exclude: ['**/*.sched.test.ts', '**/node_modules/**'] } },
      { extends: true, test: { name: 'sched', include: ['**/*.sched.test.ts'], pool: 'ktstr' } },
    ],
  },
})
