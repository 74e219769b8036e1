// Copied by ../pool.test.ts to test/fixtures/.tmp/<dir>/, where this path reaches the repo's dist/.
import { ktstr } from '../../../../dist/plugin/index.js'

export default {
  plugins: [ktstr({ topology: '1n2l2c1t', memory: 1024, scheduler: 'scx_simple' })],
  test: { include: ['**/*.sched.test.ts'], pool: 'ktstr' },
}
