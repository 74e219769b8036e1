// The gauntlet: every sched file once per topology preset, each preset its own project
// (`sched:tiny-2llc`, `sched:smt-2llc`). Presets larger than this host are left out with a note.
//   npx vitest run --config vitest.gauntlet.config.ts

import { ktstrGauntlet } from 'ktstr/plugin'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: ktstrGauntlet({
      include: ['fairness.sched.test.ts'],
      presets: ['tiny-2llc', 'smt-2llc'],
      options: { scheduler: 'scx_simple' },
    }),
  },
})
