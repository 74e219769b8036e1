// A project with ordinary unit tests and scheduler tests side by side: `vitest --project sched`
// runs only the guests, `vitest` runs both (unit tests stay in Vitest's normal pool).

import { ktstr } from 'ktstr/plugin'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  plugins: [ktstr({ topology: '1n1l2c1t', memory: 1024 })],
  test: {
    projects: [
      { extends: true, test: { name: 'unit', include: ['**/*.test.ts'], exclude: ['**/*.sched.test.ts', '**/node_modules/**'] } },
      { extends: true, test: { name: 'sched', include: ['**/*.sched.test.ts'], pool: 'ktstr' } },
    ],
  },
})
