/**
 * `ktstr exec --backend kvm --disk` end to end: our VMM's virtio-blk (src/vm/kvm/disks.ts) runs
 * the same guest commands as the qemu backend's suite (test/helpers/disk-cases.ts).
 */
import { describe, it } from 'vitest'
import { diskCases } from '../helpers/disk-cases.js'
import { BOOT, exec, skipReason } from './helpers.js'

describe.skipIf(skipReason)('ktstr exec --backend kvm --disk (our VMM)', () => {
  for (const c of diskCases) {
    it(c.name, { timeout: BOOT }, async () => {
      const p = c.prepare()
      try {
        p.verify(await exec(p.args, ['sh', '-c', p.script]))
      } finally {
        p.cleanup()
      }
    })
  }
})
