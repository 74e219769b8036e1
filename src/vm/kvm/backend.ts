/** The kvm backend: our own VMM (./launch.ts, loaded only when used), which attaches the disks itself. */
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { type Backend, kernelCmdline, type LaunchPlan } from '../backend.js'
import type { KvmPlan } from './launch.js'

/**
 * What stands for our VMM's version in a snapshot's key (../warm/key.ts): its entry module (every
 * build writes all of dist again, so any rebuild is a new key), and what the environment changes in
 * the machine it builds.
 */
export function kvmSnapshotIdentity(): { vmm: string; vmmConfig: string } {
  // launch.ts when this module runs from the sources (the project's own tests).
  const built = fileURLToPath(new URL('./launch.js', import.meta.url))
  const vmm = fs.existsSync(built) ? built : built.replace(/\.js$/, '.ts')
  return { vmm, vmmConfig: `withhold-pv=${process.env.KTSTR_KVM_WITHHOLD_PV ?? 'default'}` }
}

function kvmPlan(plan: LaunchPlan): KvmPlan {
  const disks = plan.baseDisk ? [...plan.disks, { path: plan.baseDisk, readOnly: true }] : plan.disks
  return { kernel: plan.kernel, initrd: plan.initrd, topology: plan.topology, memoryMib: plan.memoryMib, disks, cmdline: kernelCmdline() }
}

export const kvmBackend: Backend = {
  async launch(plan, console) {
    const { launchKvm } = await import('./launch.js')
    return launchKvm({ ...kvmPlan(plan), ...(plan.snapshot?.kind === 'save' ? { snapshot: { kind: 'save' } } : {}) }, console)
  },
  // Nothing to start ahead: our VMM builds the restored machine in a few milliseconds once it has the file.
  prepareRestore(plan, console) {
    let used = false
    return {
      async restore(file) {
        if (used) throw new Error('this restore was already used')
        used = true
        const { launchKvm } = await import('./launch.js')
        try {
          return await launchKvm({ ...kvmPlan(plan), snapshot: { kind: 'restore', file } }, console)
        } catch (e) {
          console.close() // the cold boot after it logs to a console of its own
          throw e
        }
      },
      abandon() {
        if (!used) console.close()
      },
    }
  },
}
