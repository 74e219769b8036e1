// Fuzz target: the `@ktstr` docblock parser (src/vm/spec/docblock.ts, values by
// src/vm/spec/parse.ts). Valid specs written in any comment shape (one or several tags, /** */ or
// //, after a BOM, a #! line or other comments, values quoted every way the shell-like word
// splitter allows) parse back to the same values, paths resolved against the file's folder;
// arbitrary text and mutated docblocks give a spec whose fields have their declared types, or
// one KtstrError of one line; never another exception.
import path from 'node:path'
import fc from 'fast-check'
import { describe } from 'vitest'
import { PRESETS } from '../../runtime/protocol/presets.js'
import { isKtstrError } from '../../src/util/errors.js'
import { MAX_TIMEOUT_S, MIN_MEMORY_MIB, maxMemoryMib } from '../../src/vm/defaults.js'
import { type DiskSpec, MAX_DISK_THROTTLE } from '../../src/vm/disk.js'
import { parseDocblock as parseIn } from '../../src/vm/spec/docblock.js'
import type { VmSpec } from '../../src/vm/spec/request.js'
import { check, fuzz, isOneLine } from './config.js'

/** The folder of the fuzzed test file: relative paths resolve against it. */
const DIR = '/proj/test'
const parseDocblock = (src: string) => parseIn(src, DIR)
const isRelative = (p: string) => p.startsWith('./') || p.startsWith('../') || p === '.' || p === '..'

/** Characters a value may hold inside one comment line: anything but line ends (and no `*` + `/`). */
const valueChar = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...'abcxyz_-./019 '.split('')) },
  { weight: 2, arbitrary: fc.constantFrom("'", '"', '\\', '=', ',', '\t', '@', '#', '$', '*', '/') },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
)
const textArb = (minLength = 0) =>
  fc
    .array(valueChar, { minLength, maxLength: 12 })
    .map((cs) => cs.join(''))
    .filter((s) => !/[\r\n\u2028\u2029]|\*\//.test(s))

/** One shell word for the splitter: quoted with '…' or "…", or bare with backslash escapes. */
function quote(word: string, style: number): string {
  // A backslash-escaped space ending a tag line is lost (the tag is trimmed first): reported, not fuzzed.
  if ((style === 0 || /\s$/.test(word)) && !word.includes("'")) return `'${word}'`
  if (style === 1 || /\s$/.test(word)) return `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"`
  return word.length === 0 ? "''" : word.replace(/[^A-Za-z0-9_./-]/g, (c) => `\\${c}`)
}

const topologyArb = fc.oneof(
  fc.constantFrom(...PRESETS.map((p) => p.name)),
  fc
    .record({ n: fc.integer({ min: 1, max: 4 }), per: fc.integer({ min: 1, max: 4 }), c: fc.integer({ min: 1, max: 8 }), t: fc.integer({ min: 1, max: 2 }) })
    .filter(({ n, per, c, t }) => n * per * c * t <= 256)
    .map(({ n, per, c, t }) => `${n}n${n * per}l${c}c${t}t`),
)
const noLeadingTrailingSpace = (s: string) => s.trim() === s && s.length > 0

type Entry = { key: string; value: string }
/** A valid spec: the entries to write and the value parseDocblock must return. */
const specArb: fc.Arbitrary<{ entries: Entry[]; expected: VmSpec }> = fc
  .record(
    {
      topology: topologyArb,
      memory: fc.integer({ min: MIN_MEMORY_MIB, max: maxMemoryMib() }).map(String),
      scheduler: fc.oneof(fc.constantFrom('eevdf', 'none', 'scx_simple', './build/scx_x'), textArb(1)),
      'sched-args': fc.array(textArb(), { maxLength: 4 }),
      backend: fc.constantFrom('qemu', 'kvm', 'auto'),
      timeout: fc.oneof(
        fc.integer({ min: 1, max: 86_400 }).map(String),
        fc.tuple(fc.nat(999), fc.integer({ min: 1, max: 99 })).map(([a, b]) => `${a}.${String(b).padStart(2, '0')}`),
      ),
      kernel: textArb(1),
      include: fc.array(
        textArb(1).filter((p) => !p.includes(',') && noLeadingTrailingSpace(p)),
        { minLength: 1, maxLength: 3 },
      ),
      disk: fc
        .record({
          file: textArb(1).filter((f) => !f.includes(',')),
          ro: fc.boolean(),
          iops: fc.option(fc.integer({ min: 1, max: 1e6 })),
          bps: fc.option(fc.integer({ min: 1, max: 1e9 })),
        })
        .map(({ file, ro, iops, bps }) => ({
          text: [file, ro ? 'ro' : '', iops ? `iops=${iops}` : '', bps ? `bps=${bps}` : ''].filter(Boolean).join(','),
          disk: { path: path.resolve(DIR, file), readOnly: ro, ...(iops ? { iops } : {}), ...(bps ? { bps } : {}) },
        })),
    },
    { requiredKeys: [] },
  )
  .chain((spec) => fc.record({ spec: fc.constant(spec), styles: fc.array(fc.nat(2), { minLength: 12, maxLength: 12 }) }))
  .map(({ spec, styles }) => {
    const entries: Entry[] = []
    const expected: VmSpec = {}
    let i = 0
    for (const [key, raw] of Object.entries(spec) as [string, unknown][]) {
      const style = styles[i++]!
      if (key === 'sched-args') {
        const words = raw as string[]
        entries.push({ key, value: words.map((w, j) => quote(w, (style + j) % 3)).join(' ') })
        expected.schedArgs = words
        continue
      }
      if (key === 'include') {
        entries.push({ key, value: (raw as string[]).join(',') })
        expected.include = (raw as string[]).map((p) => path.resolve(DIR, p))
        continue
      }
      if (key === 'disk') {
        const { text, disk } = raw as { text: string; disk: DiskSpec }
        entries.push({ key, value: text })
        expected.disks = [disk]
        continue
      }
      const value = raw as string
      entries.push({ key, value })
      if (key === 'topology') expected.topology = value
      if (key === 'memory') expected.memoryMib = Number(value)
      if (key === 'scheduler') expected.scheduler = value === 'eevdf' || value === 'none' ? null : value
      if (key === 'backend') expected.backend = value as VmSpec['backend']
      if (key === 'timeout') expected.timeoutS = Number(value)
      if (key === 'kernel') expected.kernel = isRelative(value) ? path.resolve(DIR, value) : value
    }
    return { entries, expected }
  })

/** The entries written as a file head: tags spread over comments of various shapes, then code. */
const sourceArb = (entries: Entry[]) =>
  fc
    .record({
      styles: fc.array(fc.nat(2), { minLength: entries.length, maxLength: entries.length }),
      // Which tag (comment line) each entry goes to.
      groups: fc.array(fc.nat(2), { minLength: entries.length, maxLength: entries.length }),
      shape: fc.constantFrom('docblock', 'one-line', 'slashes', 'mixed'),
      bom: fc.boolean(),
      shebang: fc.boolean(),
      before: fc.constantFrom('', '// SPDX-License-Identifier: MIT\n', '/* header */\n\n'),
      code: fc.constantFrom('', "import { test } from 'vitest'\n", 'test("x", () => {})\n'),
    })
    .map(({ styles, groups, shape, bom, shebang, before, code }) => {
      const tags: string[][] = [[], [], []]
      entries.forEach((e, i) => tags[groups[i]!]!.push(`${e.key}=${quote(e.value, styles[i]!)}`))
      const lines = tags.filter((t) => t.length > 0).map((t) => `@ktstr ${t.join(' ')}`)
      let comments: string
      if (lines.length === 0) comments = '/** nothing here */\n'
      else if (shape === 'one-line' && lines.length === 1) comments = `/** ${lines[0]} */\n`
      else if (shape === 'slashes') comments = lines.map((l) => `// ${l}\n`).join('')
      else if (shape === 'mixed') comments = lines.map((l, i) => (i % 2 ? `// ${l}\n` : `/** ${l} */\n`)).join('')
      else comments = `/**\n${lines.map((l) => ` * ${l}\n`).join('')} */\n`
      return `${bom ? '\ufeff' : ''}${shebang ? '#!/usr/bin/env node\n' : ''}${before}${comments}${code}`
    })

/** The result, if any, has the declared types and only the known keys. */
function checkTyped(spec: VmSpec, src: string): void {
  const bad = (what: string) => () => `${what} in ${JSON.stringify(spec)} from ${JSON.stringify(src)}`
  const str = (v: unknown) => typeof v === 'string'
  for (const [k, v] of Object.entries(spec)) {
    switch (k) {
      case 'topology':
      case 'kernel':
        check(str(v) && (v as string).length > 0, bad(k))
        break
      case 'disks':
        check(Array.isArray(v) && v.length === 1 && path.isAbsolute(v[0].path) && typeof v[0].readOnly === 'boolean', bad(k))
        for (const n of [v[0].iops, v[0].bps]) if (n !== undefined) check(Number.isSafeInteger(n) && n > 0 && n <= MAX_DISK_THROTTLE, bad(k))
        break
      case 'memoryMib':
        check(Number.isSafeInteger(v) && (v as number) >= MIN_MEMORY_MIB && (v as number) <= maxMemoryMib(), bad(k))
        break
      case 'timeoutS':
        check(typeof v === 'number' && v > 0 && v <= MAX_TIMEOUT_S, bad(k))
        break
      case 'scheduler':
        check(v === null || (str(v) && (v as string).length > 0), bad(k))
        break
      case 'schedArgs':
        check(Array.isArray(v) && v.every(str), bad(k))
        break
      case 'include':
        check(Array.isArray(v) && v.length > 0 && v.every((p) => str(p) && path.isAbsolute(p)), bad(k))
        break
      case 'backend':
        check(v === 'qemu' || v === 'kvm' || v === 'auto', bad(k))
        break
      default:
        check(false, bad(`unknown field ${k}`))
    }
  }
}

/** parseDocblock must return a well-typed spec or throw one KtstrError line. */
function parseOrOneLine(src: string): VmSpec | undefined {
  try {
    const spec = parseDocblock(src)
    checkTyped(spec, src)
    return spec
  } catch (e) {
    check(isKtstrError(e), () => `not a KtstrError for ${JSON.stringify(src)}: ${e instanceof Error ? e.stack : String(e)}`)
    check(isOneLine((e as Error).message), () => `error of more than one line for ${JSON.stringify(src)}: ${JSON.stringify((e as Error).message)}`)
    return undefined
  }
}

const KEYS = ['topology', 'memory', 'scheduler', 'sched-args', 'backend', 'timeout', 'kernel', 'include', 'disk']

/** Anything a tag line might hold: known or unknown keys, any values, stray quotes and `=`. */
const junkEntries = fc.array(
  fc.record({
    key: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...KEYS) }, { weight: 1, arbitrary: textArb() }),
    value: fc.oneof(
      textArb(),
      fc.string({ unit: 'binary', maxLength: 16 }),
      fc.constantFrom(
        '0',
        '-1',
        '1e3',
        '99999999999999999999',
        '3000000',
        '4294967296',
        '1.5',
        'Infinity',
        'NaN',
        '0x100',
        '',
        '1n1l1c3t',
        '4n2l1c1t',
        ',',
        'x,,y',
        'x,ro=1',
        'x,iops=0',
      ),
    ),
    style: fc.nat(3),
  }),
  { maxLength: 5 },
)

describe('fuzz: @ktstr docblock parser', () => {
  fuzz('valid specs in any comment shape parse back to their values', () =>
    fc.property(
      specArb.chain((s) => fc.record({ s: fc.constant(s), src: sourceArb(s.entries) })),
      ({ s, src }) => {
        const got = parseDocblock(src)
        const want = JSON.stringify(s.expected, Object.keys(s.expected).sort())
        check(JSON.stringify(got, Object.keys(got).sort()) === want, () => `parsed ${JSON.stringify(got)}, expected ${want}, from ${JSON.stringify(src)}`)
      },
    ),
  )

  fuzz('any tag contents: typed spec or one KtstrError line', () =>
    fc.property(junkEntries, fc.constantFrom('docblock', 'slashes'), fc.boolean(), (entries, shape, codeFirst) => {
      const body = entries.map((e) => (e.style === 3 ? e.value : `${e.key}=${e.style === 2 ? e.value : quote(e.value, e.style)}`)).join(' ')
      const tag = shape === 'docblock' ? `/**\n * @ktstr ${body}\n */\n` : `// @ktstr ${body}\n`
      parseOrOneLine(codeFirst ? `const x = 1\n${tag}` : `${tag}export {}\n`)
    }),
  )

  fuzz('arbitrary text and mutated docblocks: typed spec or one KtstrError line', () =>
    fc.property(
      fc.oneof(
        fc.string({ unit: 'grapheme', maxLength: 200 }),
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc
          .tuple(
            specArb.chain((s) => sourceArb(s.entries)),
            fc.array(fc.tuple(fc.nat(), fc.nat(3), fc.string({ maxLength: 3 })), { maxLength: 4 }),
          )
          .map(([src, edits]) => {
            let out = src
            for (const [at, op, text] of edits) {
              const i = at % (out.length + 1)
              out =
                op === 0
                  ? out.slice(0, i) + out.slice(i + 1)
                  : op === 1
                    ? out.slice(0, i) + text + out.slice(i)
                    : op === 2
                      ? `${out.slice(0, i)}\n${out.slice(i)}`
                      : `${out.slice(0, i)}"${out.slice(i)}`
            }
            return out
          }),
      ),
      (src) => {
        parseOrOneLine(src)
      },
    ),
  )
})
