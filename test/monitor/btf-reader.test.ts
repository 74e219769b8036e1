/** The BTF reader on hand-built blobs: every kind, lookups, the decoder, and malformed input. */
import { describe, expect, it } from 'vitest'
import { Btf, BtfError, decodeValue, rawDump, rawLines } from '../../src/monitor/btf/index.js'
import { BtfBuilder, sample } from './btf-blob.js'

describe('BTF reader', () => {
  it('reads every kind and prints each as bpftool does', () => {
    const { b, ids } = sample()
    const btf = Btf.parse(b.blob())
    expect(btf.typeCount).toBe(ids.sec + 1)
    const lines = [...rawDump(btf)]
    expect(lines).toContain(`[${ids.s64}] INT 'long long int' size=8 bits_offset=0 nr_bits=64 encoding=SIGNED`)
    expect(lines).toContain(`[${ids.bool}] INT '_Bool' size=1 bits_offset=0 nr_bits=8 encoding=BOOL`)
    expect(lines).toContain(`[${ids.state}] ENUM 'state' encoding=UNSIGNED size=4 vlen=2`)
    expect(lines).toContain(`[${ids.big}] ENUM64 'big' encoding=UNSIGNED size=8 vlen=1`)
    expect(lines).toContain("\t'HUGE' val=9223372036854775808ULL")
    expect(lines).toContain(`\t'flag' type_id=${ids.u32} bits_offset=448 bitfield_size=1`)
    expect(lines).toContain(`\t'pair' type_id=${ids.pair} bits_offset=384`)
    expect(lines).toContain(`[${ids.fwd}] FWD 'later' fwd_kind=union`)
    expect(lines).toContain(`[${ids.fn}] FUNC 'do_it' type_id=${ids.proto} linkage=global`)
    expect(lines).toContain(`[${ids.decl}] DECL_TAG 'kfunc' type_id=${ids.fn} component_idx=-1`)
    expect(lines).toContain(`[${ids.tag}] TYPE_TAG 'user' type_id=${ids.ptr}`)
    expect(lines).toContain(`[${ids.dbl}] FLOAT 'double' size=8`)
    expect(lines).toContain(`[${ids.v1}] VAR 'runqueues' type_id=${ids.task}, linkage=global`)
    expect(lines).toContain(`\ttype_id=${ids.v2} offset=48 size=8 (VAR 'this_cpu_off')`)
    expect(lines).toContain(`[${ids.volat}] VOLATILE '(anon)' type_id=${ids.u32}`)
    expect(lines).toContain(`[${ids.restr}] RESTRICT '(anon)' type_id=${ids.ptr}`)
  })

  it('resolves names, strips modifiers, sizes types and finds member paths through anonymous unions', () => {
    const { b, ids } = sample()
    const btf = Btf.parse(b.blob())
    expect(btf.find('task', 'STRUCT').id).toBe(ids.task)
    expect(btf.strip(ids.cu32)).toBe(ids.u32)
    expect(btf.sizeOf(ids.task)).toBe(48)
    expect(btf.sizeOf(ids.pair)).toBe(8) // u32 pair[2]
    expect(btf.member('task', 'hi')).toEqual({ bitOffset: 288, offset: 36, type: ids.u32, bitfieldSize: 0 })
    expect(btf.member('task', 'pair[1]')).toMatchObject({ bitOffset: 416, offset: 52 })
    expect(btf.member('task', 'level')).toMatchObject({ bitOffset: 449, offset: 56, bitfieldSize: 3 })
    expect(btf.percpuVar('this_cpu_off')).toEqual({ name: 'this_cpu_off', offset: 48, size: 8, type: ids.u64 })
    expect(() => btf.member('task', 'nope')).toThrow("struct task: struct task has no member 'nope' (in 'nope')")
    expect(() => btf.member('task', 'pid.x')).toThrow("cannot take member 'x' of a INT")
    expect(() => btf.member('task', 'pair[2]')).toThrow('index 2 is past the 2 elements')
    expect(() => btf.member('task', 'a..b')).toThrow("bad member path 'a..b'")
    expect(() => btf.find('rq', 'STRUCT')).toThrow("the kernel's BTF has no struct named 'rq'")
    expect(() => btf.sizeOf(ids.fn)).toThrow('is a FUNC, which has no size')
  })

  it('decodes bytes into plain values: bitfields, signed ints, enums, strings, pointers, bigints, bools', () => {
    const { b, ids } = sample()
    const btf = Btf.parse(b.blob())
    const bytes = Buffer.alloc(64)
    bytes.writeUInt32LE(231, 0)
    bytes[4] = 1
    bytes.writeBigInt64LE(-5n, 8)
    bytes.write('spin\0xyz', 16, 'latin1')
    bytes.writeUInt32LE(7, 24)
    bytes.writeUInt32LE(0xdeadbeef, 32)
    bytes.writeUInt32LE(0x12345678, 36)
    bytes.writeBigUInt64LE(0xffff888000001000n, 40)
    bytes.writeUInt32LE(10, 48)
    bytes.writeUInt32LE(20, 52)
    // flag (bit 448 = byte 56 bit 0) = 1, level (bits 449..451) = 5, neg (452..455) = -3 (0b1101)
    bytes[56] = 1 | (5 << 1) | (0b1101 << 4)
    const v = decodeValue(btf, ids.task, bytes)
    expect(v).toEqual({
      pid: 231,
      on: true,
      nice: -5,
      comm: 'spin',
      st: 'BUSY',
      whole: 0x12345678deadbeefn,
      lo: 0xdeadbeef,
      hi: 0x12345678,
      ptr: 0xffff888000001000n,
      pair: [10, 20],
      flag: 1,
      level: 5,
      neg: -3,
    })
    bytes.writeUInt32LE(3, 24)
    expect((decodeValue(btf, ids.task, bytes) as { st: unknown }).st).toBe(3) // no enumerator: the number
    expect(decodeValue(btf, ids.sec, bytes)).toMatchObject({ runqueues: { pid: 231 }, this_cpu_off: 20 * 2 ** 32 + 10 })
    expect(() => decodeValue(btf, ids.task, bytes.subarray(0, 40))).toThrow('struct task [')
    expect(() => decodeValue(btf, ids.fn, bytes)).toThrow('has no size')
  })

  it('reads split BTF on top of a base (a program or module blob)', () => {
    const { b, ids } = sample()
    const base = Btf.parse(b.blob())
    const split = new BtfBuilder({ typeCount: base.typeCount, strLen: base.strLen })
    const val = split.struct('val', 16, [
      ['cnt', ids.u64, 0],
      ['state', ids.state, 64],
    ])
    const btf = Btf.parse(split.blob(), base)
    expect(btf.firstId).toBe(base.typeCount)
    expect(btf.get(val).name).toBe('val')
    expect([...rawDump(btf)]).toEqual([`[${val}] STRUCT 'val' size=16 vlen=2`, `\t'cnt' type_id=${ids.u64} bits_offset=0`, `\t'state' type_id=${ids.state} bits_offset=64`])
    const bytes = Buffer.alloc(16)
    bytes.writeBigUInt64LE(2n ** 60n, 0)
    expect(decodeValue(btf, val, bytes)).toEqual({ cnt: 2n ** 60n, state: 'IDLE' })
  })
})

describe('malformed BTF', () => {
  it('every truncation of a valid blob is a BtfError, never another error', () => {
    const blob = sample().b.blob()
    for (let n = 0; n < blob.length; n++) {
      const cut = blob.subarray(0, n)
      let err: unknown
      try {
        Btf.parse(cut)
      } catch (e) {
        err = e
      }
      expect(err, `cut at ${n} bytes`).toBeInstanceOf(BtfError)
    }
    expect(() => Btf.parse(blob.subarray(0, 10))).toThrow('BTF is truncated: 10 bytes, the header alone is 24')
  })

  it('says what is wrong with a bad magic, version or section', () => {
    const b = sample().b
    expect(() => Btf.parse(b.blob({ magic: 0x1234 }))).toThrow('not BTF: magic 0x1234, expected 0xeb9f')
    expect(() => Btf.parse(b.blob({ magic: 0x9feb }))).toThrow('BTF is big-endian')
    expect(() => Btf.parse(b.blob({ version: 2 }))).toThrow('unsupported BTF version 2')
    const blob = Buffer.from(b.blob())
    blob.writeUInt32LE(0xffffff, 20) // str_len far past the end
    expect(() => Btf.parse(blob)).toThrow(/string section .* is past the end/)
  })

  it('rejects out-of-range type ids, name offsets and unknown kinds', () => {
    const b = new BtfBuilder()
    b.add('PTR', '', 99)
    expect(() => Btf.parse(b.blob())).toThrow('BTF type [1] (PTR) refers to its type id 99, but the last id is 1')
    const s = new BtfBuilder()
    const int = s.int('int', 4)
    s.struct('x', 4, [['a', 42, 0]])
    expect(int).toBe(1)
    expect(() => Btf.parse(s.blob())).toThrow("member 'a' type id 42")
    const blob = Buffer.from(new BtfBuilder().blob())
    const n = new BtfBuilder()
    n.int('int', 4)
    const bad = Buffer.from(n.blob())
    bad.writeUInt32LE(5000, 24) // name_off of type 1
    expect(() => Btf.parse(bad)).toThrow('BTF type [1] has name offset 5000, outside the string section')
    const k = Buffer.from(n.blob())
    k.writeUInt32LE(25 << 24, 28) // kind 25
    expect(() => Btf.parse(k)).toThrow('BTF type [1] has unknown kind 25')
    expect(Btf.parse(blob).types).toEqual([])
  })

  it('typedef and modifier cycles end in a BtfError, not a hang', () => {
    const b = new BtfBuilder()
    const a = b.add('TYPEDEF', 'a', 2)
    const c = b.add('CONST', '', a)
    const arr = b.add('ARRAY', '', 0, { extra: [3, 0, 2] }) // an array of itself
    const self = b.struct('self', 8, [['me', 4, 0]]) // contains itself
    const btf = Btf.parse(b.blob())
    expect(c).toBe(2)
    expect(() => btf.strip(a)).toThrow('BTF type [1] has a typedef/modifier chain longer than 64 (a cycle?)')
    expect(() => btf.sizeOf(a)).toThrow('(a cycle?)')
    expect(() => btf.sizeOf(arr)).toThrow('(a cycle?)')
    expect(() => decodeValue(btf, self, new Uint8Array(8))).toThrow('(a cycle?)')
    expect(() => btf.member('self', 'me.me.me')).not.toThrow()
  })

  it('a corrupted byte anywhere gives a BtfError or a valid reading, never another error', () => {
    const blob = sample().b.blob()
    let seed = 7
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    let rejected = 0
    for (let i = 0; i < 1500; i++) {
      const bad = Uint8Array.from(blob)
      bad[rand(bad.length)] = rand(256)
      try {
        const btf = Btf.parse(bad)
        for (const t of btf.types) {
          rawLines(btf, t)
          for (const f of [() => btf.strip(t.id), () => btf.sizeOf(t.id), () => decodeValue(btf, t.id, new Uint8Array(256))]) {
            try {
              f()
            } catch (e) {
              if (!(e instanceof BtfError)) throw e
            }
          }
        }
      } catch (e) {
        if (!(e instanceof BtfError)) throw e
        rejected++
      }
    }
    expect(rejected).toBeGreaterThan(50)
  })

  it('a huge array of empty elements stops at the value budget', () => {
    const b = new BtfBuilder()
    const empty = b.struct('empty', 0, [])
    const many = b.add('ARRAY', '', 0, { extra: [empty, empty, 0xffffffff] })
    const btf = Btf.parse(b.blob())
    expect(() => decodeValue(btf, many, new Uint8Array(0))).toThrow('more than 1000000 parts')
  })
})
