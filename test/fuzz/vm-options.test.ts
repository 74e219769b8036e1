// Fuzz target: the VM options of `ktstr exec` and `ktstr shell` (src/cli/vm-options.ts, values by
// src/vm/spec/parse.ts), parsed from arbitrary argv arrays exactly as exec-command.ts and
// shell-command.ts do. Properties: a VmRequest whose fields have their declared types and ranges,
// or an error the CLI prints as a usage error (a one-line KtstrError, or node's ERR_PARSE_ARGS_*
// for unknown options and missing values); never another exception.

import path from 'node:path'
import { parseArgs } from 'node:util'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { VM_OPTIONS, vmRequestFrom } from '../../src/cli/vm-options.js'
import { isKtstrError } from '../../src/util/errors.js'
import { MAX_TIMEOUT_S, MIN_MEMORY_MIB, maxMemoryMib } from '../../src/vm/defaults.js'
import { MAX_DISK_THROTTLE } from '../../src/vm/disk.js'
import type { VmRequest } from '../../src/vm/spec/request.js'
import { check, fuzz, isOneLine } from './config.js'

const FLAGS = [
  '--kernel',
  '--backend',
  '--topology',
  '--memory',
  '--scheduler',
  '--sched-args',
  '--timeout',
  '--timing',
  '--include',
  '-i',
  '--env',
  '-e',
  '--nested-kvm',
  '--disk',
  '--help',
  '-h',
]

const valueArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '0',
      '1',
      '-1',
      '256',
      '320',
      '1024',
      String(maxMemoryMib()),
      String(maxMemoryMib() + 1),
      String(MAX_TIMEOUT_S),
      String(MAX_TIMEOUT_S + 1),
      '1e3',
      '0x100',
      ' 512 ',
      '1.5',
      '99999999999999999999',
      '3000000',
      'Infinity',
      'NaN',
      '',
      '-',
      '--',
      'qemu',
      'kvm',
      'auto',
      'x',
      'A=1',
      '=1',
      'A=',
      'disk.img',
      'disk.img,ro',
      'd,iops=10,bps=99999999999999999999',
      'd,ro=1',
      ',',
      '1n2l2c1t',
      'tiny-2llc',
      '"a b" \'c\'',
      'unterminated "quote',
    ),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
)

/** argv made of known flags (alone, with a value, or --flag=value), unknown flags, `--` and words. */
const argvArb = fc
  .array(
    fc.oneof(
      { weight: 5, arbitrary: fc.tuple(fc.constantFrom(...FLAGS), valueArb).map(([f, v]) => [f, v]) },
      { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...FLAGS.filter((f) => f.startsWith('--'))), valueArb).map(([f, v]) => [`${f}=${v}`]) },
      { weight: 1, arbitrary: fc.constantFrom(...FLAGS).map((f) => [f]) },
      { weight: 1, arbitrary: fc.oneof(fc.constantFrom('--', '-', '--bogus', '-x', '-ih', '---memory'), valueArb).map((w) => [w]) },
    ),
    { maxLength: 8 },
  )
  .map((parts) => parts.flat())

/** The request has the declared types, within the ranges a guest can be started with. */
function checkRequest(req: VmRequest, argv: string[]): void {
  const bad = (what: string) => () => `${what}: ${JSON.stringify(req)} from ${JSON.stringify(argv)}`
  const nonEmpty = (v: unknown) => typeof v === 'string' && v.length > 0
  if ('kernel' in req) check(nonEmpty(req.kernel), bad('kernel'))
  if ('backend' in req) check(['qemu', 'kvm', 'auto'].includes(req.backend!), bad('backend'))
  if ('topology' in req) check(nonEmpty(req.topology), bad('topology'))
  if ('memoryMib' in req) check(Number.isSafeInteger(req.memoryMib) && req.memoryMib! >= MIN_MEMORY_MIB && req.memoryMib! <= maxMemoryMib(), bad('memoryMib'))
  if ('scheduler' in req) check(nonEmpty(req.scheduler), bad('scheduler'))
  if ('schedArgs' in req) check(Array.isArray(req.schedArgs) && req.schedArgs!.every((w) => typeof w === 'string'), bad('schedArgs'))
  if ('timeoutS' in req) check(req.timeoutS! > 0 && req.timeoutS! <= MAX_TIMEOUT_S, bad('timeoutS'))
  if ('include' in req) check(req.include!.length > 0 && req.include!.every((p) => typeof p === 'string'), bad('include'))
  if ('env' in req)
    check(
      Object.entries(req.env!).every(([k, v]) => k.length > 0 && !k.includes('=') && typeof v === 'string'),
      bad('env'),
    )
  if ('nestedKvm' in req) check(req.nestedKvm === true, bad('nestedKvm'))
  if ('disks' in req) {
    for (const d of req.disks!) {
      check(path.isAbsolute(d.path) && typeof d.readOnly === 'boolean', bad('disk path'))
      for (const n of [d.iops, d.bps]) if (n !== undefined) check(Number.isSafeInteger(n) && n > 0 && n <= MAX_DISK_THROTTLE, bad('disk iops/bps'))
    }
  }
}

/** Runs one command's option parsing; a thrown error must be one the CLI prints as one line. */
function parseOrOneLine(argv: string[], mode: 'exec' | 'shell'): void {
  let req: VmRequest
  try {
    if (mode === 'exec') {
      const { values, positionals } = parseArgs({ args: argv, options: VM_OPTIONS, allowPositionals: true, strict: true })
      req = vmRequestFrom(values, { kind: 'exec', argv: positionals, tty: false })
    } else {
      const { values } = parseArgs({ args: argv, options: VM_OPTIONS, allowPositionals: false, strict: true })
      req = vmRequestFrom({ timeout: '86400', ...values }, { kind: 'shell', tty: false })
    }
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code
    const expected = isKtstrError(e) || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))
    check(expected, () => `unexpected ${e instanceof Error ? e.stack : String(e)} for ${JSON.stringify(argv)}`)
    // node's own parseArgs errors may add hint lines (an option value that looks like an option);
    // ktstr's errors quote the value given, so only a value with a line break spans lines.
    const echoesLineBreak = argv.some((a) => !isOneLine(`x${a}`))
    if (isKtstrError(e) && !echoesLineBreak) check(isOneLine(e.message), () => `error of more than one line for ${JSON.stringify(argv)}: ${JSON.stringify(e.message)}`)
    return
  }
  checkRequest(req, argv)
}

describe('fuzz: ktstr exec/shell option parser', () => {
  fuzz('exec: arbitrary argv gives a typed request or a one-line error', () => fc.property(argvArb, (argv) => parseOrOneLine(argv, 'exec')))
  fuzz('shell: arbitrary argv gives a typed request or a one-line error', () => fc.property(argvArb, (argv) => parseOrOneLine(argv, 'shell')))
  fuzz('exec: any strings at all as argv', () => fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 10 }), { maxLength: 8 }), (argv) => parseOrOneLine(argv, 'exec')))
})

// Found by the targets above: iops/bps past QEMU's limit were accepted, so QEMU failed at launch
// ("Value '100000000000000000000' is too large for parameter 'throttling.bps-total'", or "expects a
// number" for 1e+21) while the kvm backend took them.
describe("disk throttling values past QEMU's limit", () => {
  it('are a one-line usage error naming the limit', () => {
    for (const argv of [['--disk', 'd.img,bps=99999999999999999999'], ['--disk=d.img,iops=1000000000000001']]) {
      expect(() => parseOrOneLine(argv, 'exec')).not.toThrow()
      const { values } = parseArgs({ args: argv, options: VM_OPTIONS, strict: true })
      expect(() => vmRequestFrom(values, { kind: 'exec', argv: ['true'], tty: false })).toThrow(/N at most 1000000000000000 \(QEMU's limit\)/)
    }
    const { values } = parseArgs({ args: ['--disk', 'd.img,bps=1000000000000000'], options: VM_OPTIONS, strict: true })
    expect(vmRequestFrom(values, { kind: 'exec', argv: ['true'], tty: false }).disks?.[0]?.bps).toBe(1e15)
  })
})
