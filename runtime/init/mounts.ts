/** The filesystems a scheduler test expects, mounted by PID 1 before anything else runs. */
import fs from 'node:fs'
import { MS_NODEV, MS_NOEXEC, MS_NOSUID } from '../../native-shims/constants.js'
import { mount } from '../../native-shims/libc.js'

interface MountSpec {
  source: string
  target: string
  fstype: string
  flags: number
  data?: string
  /** Optional mounts (kernel may lack the filesystem) only warn. */
  optional?: boolean
}

const SAFE = MS_NOSUID | MS_NODEV

export const MOUNTS: readonly MountSpec[] = [
  { source: 'proc', target: '/proc', fstype: 'proc', flags: SAFE | MS_NOEXEC },
  { source: 'sysfs', target: '/sys', fstype: 'sysfs', flags: SAFE | MS_NOEXEC },
  { source: 'devtmpfs', target: '/dev', fstype: 'devtmpfs', flags: MS_NOSUID, data: 'mode=0755' },
  { source: 'devpts', target: '/dev/pts', fstype: 'devpts', flags: MS_NOSUID | MS_NOEXEC, data: 'ptmxmode=0666', optional: true },
  { source: 'tmpfs', target: '/dev/shm', fstype: 'tmpfs', flags: SAFE, optional: true },
  { source: 'cgroup2', target: '/sys/fs/cgroup', fstype: 'cgroup2', flags: SAFE | MS_NOEXEC },
  { source: 'bpf', target: '/sys/fs/bpf', fstype: 'bpf', flags: SAFE | MS_NOEXEC, data: 'mode=0700', optional: true },
  { source: 'debugfs', target: '/sys/kernel/debug', fstype: 'debugfs', flags: SAFE | MS_NOEXEC, optional: true },
  { source: 'tracefs', target: '/sys/kernel/tracing', fstype: 'tracefs', flags: SAFE | MS_NOEXEC, optional: true },
]

/**
 * Mount everything; returns warnings for optional mounts that failed. Throws on a required one.
 * /tmp and /run stay on the root filesystem (the initramfs is already RAM): a tmpfs over them would
 * hide host files the image mirrors there, e.g. a scheduler or payload under /tmp.
 */
export function mountAll(): string[] {
  const warnings: string[] = []
  for (const [dir, mode] of [
    ['/tmp', 0o1777],
    ['/run', 0o755],
  ] as const) {
    fs.mkdirSync(dir, { recursive: true })
    fs.chmodSync(dir, mode)
  }
  for (const m of MOUNTS) {
    try {
      fs.mkdirSync(m.target, { recursive: true })
      mount(m.source, m.target, m.fstype, m.flags, m.data)
    } catch (e) {
      const msg = `mount ${m.fstype} on ${m.target}: ${(e as Error).message}`
      if (!m.optional) throw new Error(msg)
      warnings.push(msg)
    }
  }
  return warnings
}
