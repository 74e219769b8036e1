/** The kvm backend: our own VMM (./launch.ts, loaded only when used), which attaches the disks itself. */
import { type Backend, kernelCmdline } from '../backend.js'

export const kvmBackend: Backend = {
  async launch(plan, console) {
    const { launchKvm } = await import('./launch.js')
    const disks = plan.baseDisk ? [...plan.disks, { path: plan.baseDisk, readOnly: true }] : plan.disks
    return launchKvm({ ...plan, disks, cmdline: kernelCmdline() }, console)
  },
}
