/**
 * The one parser and validator of the VM spec, whichever source a value comes from: a test file's
 * `@ktstr` docblock (./docblock.ts), the plugin's options (plugin/spec.ts), the CLI's flags
 * (src/cli/vm-options.ts) or a VmRequest given to bootGuest. A value may be text (docblock,
 * flags) or typed (options, requests); the same rules and limits (../defaults.ts) apply to both,
 * and a bad value is one KtstrError line naming it as its source spells it, e.g.
 * `bad --memory="9": expected …`, `bad @ktstr memory="9": …`, `bad ktstr() option memory=9: …`.
 */
import path from 'node:path'
import { resolveTopology } from '../../../runtime/protocol/presets.js'
import { isKtstrError, KtstrError } from '../../util/errors.js'
import { shellWords } from '../../util/shell-words.js'
import { MAX_MONITOR_HZ, MAX_TIMEOUT_S, MIN_MEMORY_MIB, MIN_STALL_MS, maxMemoryMib } from '../defaults.js'
import { type DiskSpec, MAX_DISK_THROTTLE } from '../disk.js'
import type { VmRequest, VmSpec } from './request.js'

/** The spec's keys, spelled as in the docblock and the CLI flags. */
export const SPEC_KEYS = ['topology', 'memory', 'scheduler', 'sched-args', 'backend', 'timeout', 'kernel', 'include', 'disk', 'stall-ms', 'monitor-hz', 'warm'] as const
export type SpecKey = (typeof SPEC_KEYS)[number]
type SpecSource = 'docblock' | 'option' | 'flag' | 'request'

/** Scheduler names that mean "the kernel's default scheduler (EEVDF), no sched_ext". */
const NO_SCHEDULER: readonly string[] = ['eevdf', 'none']

const FIELDS: Partial<Record<SpecKey, keyof VmSpec>> = {
  memory: 'memoryMib',
  timeout: 'timeoutS',
  'sched-args': 'schedArgs',
  disk: 'disks',
  'stall-ms': 'stallMs',
  'monitor-hz': 'monitorHz',
}
const fieldOf = (key: SpecKey): keyof VmSpec => FIELDS[key] ?? (key as keyof VmSpec)

/** A key as each source spells it. */
const NAME: Record<SpecSource, (key: SpecKey) => string> = {
  docblock: (key) => `@ktstr ${key}`,
  flag: (key) => `--${key}`,
  option: (key) => `ktstr() option ${key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())}`,
  request: fieldOf,
}

/** Why a value is refused: the part of the message after `bad <name>=<value>: `. */
class Refused {
  constructor(readonly why: string) {}
}
const refuse = (why: string): never => {
  throw new Refused(why)
}
/** What `f` returns; its KtstrError refuses the value, without the part that repeats the value. */
function refusing<T>(f: () => T, repeat: RegExp | string): T {
  try {
    return f()
  } catch (e) {
    if (!isKtstrError(e)) throw e
    return refuse(e.message.replace(repeat, ''))
  }
}
const text = (v: unknown, why: string): string => (typeof v === 'string' && v !== '' ? v : refuse(why))
const strings = (v: unknown, why: string): string[] => (Array.isArray(v) && v.every((s) => typeof s === 'string') ? [...v] : refuse(why))
/** A typed number as is; text only if it matches `form`. */
const numberOf = (v: unknown, form: RegExp): number => (typeof v === 'number' ? v : typeof v === 'string' && form.test(v) ? Number(v) : NaN)
const isRelativePath = (p: string) => p.startsWith('./') || p.startsWith('../') || p === '.' || p === '..'
const DISK_FORM = 'expected FILE[,ro][,iops=N][,bps=N]'
/** A whole number from `min` to `max`, or `off`. */
const wholeOrOff = (v: unknown, min: number, max: number, unit: string): number | 'off' => {
  if (v === 'off') return 'off'
  const n = numberOf(v, /^\d+$/)
  return Number.isInteger(n) && n >= min && n <= max ? n : refuse(`expected a whole number of ${unit} from ${min} to ${max}, or off`)
}

/** Each key's rule: the value (text or typed) → the VmSpec field's value; `dir` resolves relative paths. */
const RULES: { [K in SpecKey]: (v: unknown, dir: string) => unknown } = {
  topology: (v) => {
    // NnNlNcNt or a gauntlet preset name (smt-2llc).
    const s = text(v, 'expected NnNlNcNt (e.g. 1n2l4c1t) or a preset name')
    refusing(() => resolveTopology(s), /^bad topology "[^"]*": /)
    return s
  },
  memory: (v) => {
    const n = numberOf(v, /^\d+$/)
    if (Number.isInteger(n) && n >= MIN_MEMORY_MIB && n <= maxMemoryMib()) return n
    return refuse(`expected a whole number of MiB from ${MIN_MEMORY_MIB} to ${maxMemoryMib()} (this host's memory)`)
  },
  timeout: (v) => {
    const n = numberOf(v, /^\d+(\.\d+)?$/)
    return n > 0 && n <= MAX_TIMEOUT_S ? n : refuse(`expected a number of seconds above 0 and at most ${MAX_TIMEOUT_S} (about 24 days, the limit of Node's timers)`)
  },
  backend: (v) => (v === 'qemu' || v === 'kvm' || v === 'auto' ? v : refuse('expected qemu, kvm or auto')),
  scheduler: (v) => {
    const s = text(v, 'expected a scheduler name (e.g. scx_simple), a path, or eevdf for none')
    return NO_SCHEDULER.includes(s) ? null : s
  },
  'sched-args': (v) => (typeof v === 'string' ? refusing(() => shellWords(v), ` in ${JSON.stringify(v)}`) : strings(v, 'expected an array of strings or one string')),
  kernel: (v, dir) => {
    const s = text(v, 'expected a kernel path or cache key')
    return isRelativePath(s) ? path.resolve(dir, s) : s
  },
  include: (v, dir) => {
    // Text is comma-separated paths, e.g. include=./bench.sh,/usr/bin/stress-ng
    const paths = typeof v === 'string' ? v.split(',').map((p) => p.trim()) : strings(v, 'expected an array of paths')
    if (paths.includes('')) refuse(typeof v === 'string' ? 'expected comma-separated paths, e.g. include=./payload.sh,/usr/bin/stress-ng' : 'expected an array of paths')
    return paths.map((p) => path.resolve(dir, p))
  },
  disk: (v, dir): DiskSpec[] => {
    // FILE[,ro][,iops=N][,bps=N]; both backends take the same spec.
    const [file, ...opts] = text(v, DISK_FORM).split(',')
    const disk: DiskSpec = { path: path.resolve(dir, file || refuse(DISK_FORM)), readOnly: false }
    for (const o of opts) {
      const [k, n] = o.split('=')
      if (k === 'ro' && n === undefined) disk.readOnly = true
      else if ((k === 'iops' || k === 'bps') && n !== undefined && /^\d+$/.test(n) && Number(n) > 0 && Number(n) <= MAX_DISK_THROTTLE) disk[k] = Number(n)
      else refuse(`bad disk option ${JSON.stringify(o)}: use ro, iops=N or bps=N (N > 0), N at most ${MAX_DISK_THROTTLE} (QEMU's limit)`)
    }
    return [disk]
  },
  // The host's stall watchdog (src/monitor/stall.ts) and the monitor it runs on.
  'stall-ms': (v) => wholeOrOff(v, MIN_STALL_MS, MAX_TIMEOUT_S * 1000, 'ms'),
  'monitor-hz': (v) => wholeOrOff(v, 1, MAX_MONITOR_HZ, 'samples per second'),
  // Warm start from a snapshot of a booted guest (../warm/); false boots every guest cold.
  warm: (v) => (v === true || v === 'true' ? true : v === false || v === 'false' ? false : refuse('expected true or false')),
}

/**
 * Validate the values one source gives (by key; absent keys are skipped) into a VmSpec. Relative
 * paths resolve against `dir` (a test file's folder for its docblock). A whole spec (every source
 * but a docblock, which is layered over the plugin's options first) is also checked by `finishSpec`.
 */
export function parseSpec(values: Partial<Record<SpecKey, unknown>>, from: SpecSource, dir = process.cwd()): VmSpec {
  const spec: Record<string, unknown> = {}
  for (const key of SPEC_KEYS) {
    const value = values[key]
    if (value === undefined || value === null) continue
    // Several disks (--disk given more than once): each is checked, and named, on its own.
    const each = key === 'disk' && Array.isArray(value) ? (value as unknown[]) : [value]
    const got = each.map((v) => {
      try {
        return RULES[key](v, dir)
      } catch (e) {
        if (!(e instanceof Refused)) throw e
        throw new KtstrError(`bad ${NAME[from](key)}=${typeof v === 'number' ? String(v) : JSON.stringify(v)}: ${e.why}`)
      }
    })
    spec[fieldOf(key)] = each === value ? got.flat() : got[0]
  }
  return from === 'docblock' ? spec : finishSpec(spec, from)
}

/** A whole spec: `null` (no scheduler, said explicitly) becomes absent, and sched-args need a scheduler. */
export function finishSpec(spec: VmSpec, from: SpecSource): VmSpec {
  if (spec.scheduler === null) delete spec.scheduler
  if (spec.schedArgs && !spec.scheduler) {
    throw new KtstrError(`${NAME[from]('sched-args')} given without a scheduler; add ${NAME[from]('scheduler')}=<name>`)
  }
  return spec
}

/** A VmRequest given to bootGuest directly is held to the same rules (its disks are parsed already). */
export function checkRequest(req: VmRequest): VmRequest {
  const spec = parseSpec(Object.fromEntries(SPEC_KEYS.filter((k) => k !== 'disk').map((k) => [k, req[fieldOf(k)]])), 'request')
  return { ...req, ...spec, scheduler: spec.scheduler }
}
