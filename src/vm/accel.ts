/**
 * Whether hardware KVM can run our guests. /dev/kvm alone is not enough: some hosts expose a
 * paravirtual KVM (e.g. "kvm-pvm") that opens and creates VMs but cannot run an ordinary kernel
 * (QEMU aborts setting MSRs). Real KVM needs the CPU's vmx or svm flag.
 */
import fs from 'node:fs'

export interface KvmProbe {
  usable: boolean
  /** Why not, in words a user can act on. */
  reason?: string
}

export function probeKvm(): KvmProbe {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return {
      usable: false,
      reason: code === 'ENOENT' ? '/dev/kvm does not exist' : `/dev/kvm is not read-writable by this user (${code}); add yourself to the kvm group`,
    }
  }
  let flags = ''
  try {
    flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? ''
  } catch {
    return { usable: false, reason: '/proc/cpuinfo is unreadable' }
  }
  if (!/\b(vmx|svm)\b/.test(flags)) {
    return { usable: false, reason: '/dev/kvm exists but the CPU has no vmx/svm flag (paravirtual KVM cannot run these guests)' }
  }
  return { usable: true }
}
