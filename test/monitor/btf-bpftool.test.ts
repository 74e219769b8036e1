/**
 * The BTF reader against bpftool on the real guest kernel: every type printed in bpftool's raw
 * format must match line for line, and the sched_ext layout the monitor reads must agree with
 * bpftool's C view and raw offsets.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { extractBtf } from '../../src/kernel/btf-extract.js'
import { Btf, decodeValue, rawDump } from '../../src/monitor/btf/index.js'
import { haveRealKernel, REAL_KERNEL } from '../kernel/helpers.js'
import { BtfBuilder, sample } from './btf-blob.js'

if (!haveRealKernel) console.warn(`[ktstr tests] skipping the BTF-vs-bpftool tests: no guest kernel (${REAL_KERNEL || 'set KTSTR_KERNEL or run ktstr kernel build'})`)

const bpftool = ['/usr/sbin/bpftool', '/usr/bin/bpftool', '/sbin/bpftool'].find((p) => fs.existsSync(p))

function dump(file: string, ...format: string[]): string {
  if (!bpftool) throw new Error('bpftool is not installed: run bash .ci/setup (it installs bpftool)')
  return execFileSync(bpftool, ['btf', 'dump', 'file', file, ...format], { maxBuffer: 1 << 30, encoding: 'utf8' })
}

/** A member as bpftool's C dump declares it (enough for plain members: named types, pointers, arrays). */
function cDecl(btf: Btf, id: number, name: string): string {
  const t = btf.type(id)
  if (!t) return `void ${name}`
  switch (t.kind) {
    case 'PTR':
      return cDecl(btf, t.type, `*${name}`)
    case 'ARRAY':
      return cDecl(btf, t.type, `${name}[${t.nelems}]`)
    case 'CONST':
    case 'VOLATILE':
      return `${t.kind.toLowerCase()} ${cDecl(btf, t.type, name)}`
    case 'STRUCT':
    case 'UNION':
    case 'ENUM':
      return `${t.kind.toLowerCase()} ${t.name} ${name}`
    default:
      return `${t.name} ${name}`
  }
}

function cBlock(c: string, head: string): string[] {
  const start = c.indexOf(`\n${head} {\n`)
  expect(start, `${head} in bpftool's C dump`).toBeGreaterThan(0)
  const end = c.indexOf('\n};\n', start)
  return c.slice(c.indexOf('\n', start + 1) + 1, end).split('\n')
}

/** `'member' type_id=N bits_offset=B` of a struct, read from bpftool's raw text (independent of our parser). */
function rawMemberBits(raw: string[], struct: string, member: string): number {
  const at = raw.findIndex((l) => new RegExp(`^\\[\\d+\\] STRUCT '${struct}' `).test(l))
  for (let i = at + 1; raw[i]?.startsWith('\t'); i++) {
    const m = new RegExp(`^\\t'${member}' type_id=\\d+ bits_offset=(\\d+)`).exec(raw[i]!)
    if (m) return Number(m[1])
  }
  throw new Error(`bpftool shows no member ${member} of struct ${struct}`)
}

describe.skipIf(!haveRealKernel)('BTF of the real guest kernel vs bpftool', () => {
  let dir: string
  let file: string
  let btf: Btf
  let raw: string[]

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-btf-'))
    file = path.join(dir, 'vmlinux.btf')
    const image = fs.readFileSync(path.join(REAL_KERNEL, 'bzImage'))
    let t = performance.now()
    const r = extractBtf(image, REAL_KERNEL)
    const extractMs = performance.now() - t
    if (!r.ok) throw new Error(r.reason)
    fs.writeFileSync(file, r.blob)
    t = performance.now()
    btf = Btf.parse(r.blob)
    const parseMs = performance.now() - t
    console.log(`[btf] ${r.blob.length} bytes, ${btf.types.length} types; extract ${extractMs.toFixed(0)} ms, parse ${parseMs.toFixed(0)} ms`)
    raw = dump(file).split('\n')
    if (raw.at(-1) === '') raw.pop()
  }, 120_000)

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('prints every type exactly as bpftool btf dump (raw) does', () => {
    const ours = [...rawDump(btf)]
    const n = Math.max(ours.length, raw.length)
    for (let i = 0; i < n; i++) {
      if (ours[i] !== raw[i]) expect(ours[i], `first differing line ${i + 1}`).toBe(raw[i])
    }
    const headers = raw.filter((l) => l.startsWith('[')).length
    expect(headers).toBe(btf.types.length)
    expect(headers).toBeGreaterThan(10_000)
    console.log(`[btf] ${headers} types, ${raw.length} lines identical to bpftool`)
  })

  it("lays out struct rq's scx and struct scx_rq as bpftool's C dump and raw offsets do", () => {
    const rq = btf.struct('rq')
    const scx = btf.member('rq', 'scx')
    expect(cDecl(btf, scx.type, 'scx')).toBe('struct scx_rq scx')
    const c = dump(file, 'format', 'c')
    expect(cBlock(c, 'struct rq')).toContain('\tstruct scx_rq scx;')
    expect(scx.bitOffset).toBe(rawMemberBits(raw, 'rq', 'scx'))
    expect(scx.offset * 8).toBe(scx.bitOffset)
    expect(btf.sizeOf(rq.id)).toBe(rq.size)

    const scxRq = btf.struct('scx_rq')
    expect(scxRq.members.map((m) => `\t${cDecl(btf, m.type, m.name)};`)).toEqual(cBlock(c, 'struct scx_rq'))
    for (const m of ['nr_running', 'local_dsq']) expect(btf.member('scx_rq', m).bitOffset).toBe(rawMemberBits(raw, 'scx_rq', m))
    expect(cDecl(btf, btf.member('scx_rq', 'nr_running').type, 'nr_running')).toBe('u32 nr_running')
    expect(btf.sizeOf(btf.member('scx_rq', 'nr_running').type)).toBe(4)

    // Through two levels: rq.scx.local_dsq.nr is the local DSQ's depth.
    const nr = btf.member('rq', 'scx.local_dsq.nr')
    expect(nr.bitOffset).toBe(scx.bitOffset + rawMemberBits(raw, 'scx_rq', 'local_dsq') + rawMemberBits(raw, 'scx_dispatch_q', 'nr'))

    const see = btf.struct('sched_ext_entity')
    expect(see.members.map((m) => `\t${cDecl(btf, m.type, m.name)};`)).toEqual(cBlock(c, 'struct sched_ext_entity'))
    const runnableAt = btf.member('sched_ext_entity', 'runnable_at')
    expect(cDecl(btf, runnableAt.type, 'runnable_at')).toBe('long unsigned int runnable_at')
    expect(runnableAt.bitOffset).toBe(rawMemberBits(raw, 'sched_ext_entity', 'runnable_at'))
  })

  it('finds per-CPU variables where the .data..percpu DATASEC puts them', () => {
    for (const name of ['runqueues', 'this_cpu_off']) {
      const line = raw.find((l) => l.endsWith(`(VAR '${name}')`))
      const m = /offset=(\d+) size=(\d+)/.exec(line ?? '')
      expect(m, `bpftool lists ${name} in .data..percpu`).not.toBeNull()
      const v = btf.percpuVar(name)
      expect([v.offset, v.size]).toEqual([Number(m![1]), Number(m![2])])
    }
    expect(btf.sizeOf(btf.percpuVar('runqueues').type)).toBe(btf.struct('rq').size)
    // 6.12 keeps the CPU number in pcpu_hot (inside an anonymous struct in an anonymous union, both at
    // offset 0) rather than in a cpu_number variable of its own.
    const hot = btf.percpuVar('pcpu_hot')
    const inAnon = /^\t'cpu_number' type_id=\d+ bits_offset=(\d+)$/m.exec(raw.join('\n'))
    expect(btf.member(hot.type, 'cpu_number').bitOffset).toBe(Number(inAnon![1]))
    expect(btf.member(hot.type, 'current_task').bitOffset).toBe(0)
    expect(() => btf.percpuVar('no_such_var')).toThrow("the kernel's BTF has no per-CPU variable 'no_such_var' in .data..percpu")
  })

  it('decodes a zeroed struct rq into plain values', () => {
    const rq = btf.struct('rq')
    const v = decodeValue(btf, rq.id, new Uint8Array(rq.size)) as Record<string, unknown>
    const scx = v.scx as Record<string, unknown>
    expect(scx.nr_running).toBe(0)
    expect((scx.local_dsq as Record<string, unknown>).nr).toBe(0)
    expect(scx.cpu_released).toBe(false)
    expect(v.curr).toBe(0n)
  })
})

describe('hand-built BTF vs bpftool', () => {
  it('prints every kind (ENUM64, TYPE_TAG, DECL_TAG, bitfields, split BTF) as bpftool does', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-btf-'))
    try {
      const { b, ids } = sample()
      const blob = b.blob()
      fs.writeFileSync(path.join(dir, 'base.btf'), blob)
      const base = Btf.parse(blob)
      expect([...rawDump(base)].join('\n')).toBe(dump(path.join(dir, 'base.btf')).trimEnd())
      const split = new BtfBuilder({ typeCount: base.typeCount, strLen: base.strLen })
      split.struct('val', 16, [
        ['cnt', ids.u64, 0],
        ['st', ids.state, 64, 3],
      ])
      fs.writeFileSync(path.join(dir, 'split.btf'), split.blob())
      const ours = [...rawDump(Btf.parse(split.blob(), base))].join('\n')
      if (!bpftool) throw new Error('bpftool is not installed: run bash .ci/setup (it installs bpftool)')
      const theirs = execFileSync(bpftool, ['-B', path.join(dir, 'base.btf'), 'btf', 'dump', 'file', path.join(dir, 'split.btf')], { encoding: 'utf8' })
      expect(ours).toBe(theirs.trimEnd())
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
