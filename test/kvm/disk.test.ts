/**
 * `ktstr exec --backend kvm --disk` end to end: our VMM's virtio-blk (src/vm/kvm/virtio/block/disks.ts) runs
 * the same guest commands as the qemu backend's suite (test/helpers/disk-cases.ts).
 */
import { describe, it } from 'vitest'
import { diskCases } from '../helpers/disk-cases.js'
import { secondRunIsRefused } from '../helpers/disk-in-use.js'
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

  // The same line as the qemu backend's (test/cli/disk.test.ts): the host checks the locks our VMM holds.
  it('a disk in use by another run is refused with one line, before booting', { timeout: 2 * BOOT }, () => secondRunIsRefused(exec, BOOT))
})
