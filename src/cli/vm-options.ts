/** The VM options `exec` and `shell` share, parsed into a VmRequest. */
import type { ParseArgsConfig } from 'node:util'
import { KtstrError } from '../util/errors.js'
import { shellWords } from '../util/shell-words.js'
import { parseMemoryMib, parseTimeoutS } from '../vm/defaults.js'
import { parseDiskSpec } from '../vm/disk.js'
import type { BackendName, VmRequest } from '../vm/session.js'

export const VM_OPTIONS = {
  kernel: { type: 'string' },
  backend: { type: 'string' },
  topology: { type: 'string' },
  memory: { type: 'string' },
  scheduler: { type: 'string' },
  'sched-args': { type: 'string' },
  timeout: { type: 'string' },
  timing: { type: 'boolean' },
  include: { type: 'string', short: 'i', multiple: true },
  env: { type: 'string', short: 'e', multiple: true },
  'nested-kvm': { type: 'boolean' },
  disk: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options']

type Values = {
  [K in keyof typeof VM_OPTIONS]?: (typeof VM_OPTIONS)[K] extends { multiple: true }
    ? string[]
    : (typeof VM_OPTIONS)[K]['type'] extends 'string'
      ? string
      : boolean
}

export function vmRequestFrom(v: Values, mode: VmRequest['mode']): VmRequest {
  const req: VmRequest = { mode }
  if (v.kernel) req.kernel = v.kernel
  if (v.backend) req.backend = parseBackend(v.backend)
  if (v.topology) req.topology = v.topology
  if (v.memory !== undefined) req.memoryMib = parseMemoryMib(v.memory, `--memory ${JSON.stringify(v.memory)}`)
  if (v.scheduler) req.scheduler = v.scheduler
  if (v['sched-args']) req.schedArgs = shellWords(v['sched-args'])
  if (v.timeout !== undefined) req.timeoutS = parseTimeoutS(v.timeout, `--timeout ${JSON.stringify(v.timeout)}`)
  if (v.include?.length) req.include = v.include
  if (v.env?.length) req.env = parseEnv(v.env)
  if (v['nested-kvm']) req.nestedKvm = true
  if (v.disk?.length) req.disks = v.disk.map((d) => parseDiskSpec(d))
  return req
}

export function parseBackend(s: string): BackendName {
  if (s === 'qemu' || s === 'kvm' || s === 'auto') return s
  throw new KtstrError(`unknown backend ${JSON.stringify(s)}; use qemu, kvm or auto`)
}

function parseEnv(items: string[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const item of items) {
    const eq = item.indexOf('=')
    if (eq <= 0) throw new KtstrError(`--env needs NAME=VALUE, got ${JSON.stringify(item)}`)
    env[item.slice(0, eq)] = item.slice(eq + 1)
  }
  return env
}
