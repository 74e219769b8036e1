/** The VM options `exec` and `shell` share, parsed into a VmRequest (the values by ../vm/spec/parse.ts). */
import type { ParseArgsConfig, parseArgs } from 'node:util'
import { KtstrError } from '../util/errors.js'
import { parseSpec } from '../vm/spec/parse.js'
import type { VmRequest } from '../vm/spec/request.js'

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
  'stall-ms': { type: 'string' },
  'monitor-hz': { type: 'string' },
  cold: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options']

type Values = ReturnType<typeof parseArgs<{ options: typeof VM_OPTIONS }>>['values']

export function vmRequestFrom(v: Values, mode: VmRequest['mode']): VmRequest {
  const req: VmRequest = { mode, ...parseSpec(v, 'flag') }
  if (v.env?.length) req.env = parseEnv(v.env)
  if (v['nested-kvm']) req.nestedKvm = true
  if (v.cold) req.warm = false
  return req
}

function parseEnv(items: string[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const item of items) {
    const eq = item.indexOf('=')
    if (eq <= 0) throw new KtstrError(`bad --env=${JSON.stringify(item)}: expected NAME=VALUE`)
    env[item.slice(0, eq)] = item.slice(eq + 1)
  }
  return env
}
