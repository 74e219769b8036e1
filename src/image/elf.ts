import fs from 'node:fs'
import { KtstrError } from '../util/errors.js'

/** What the dynamic loader needs to know about one ELF64 little-endian file. */
export interface ElfInfo {
  /** e_machine (62 = x86-64, 183 = aarch64). */
  machine: number
  /** e_type (2 = EXEC, 3 = DYN). */
  type: number
  /** PT_INTERP path, e.g. /lib64/ld-linux-x86-64.so.2; undefined for static binaries and libraries. */
  interpreter?: string
  /** DT_NEEDED names, in file order. */
  needed: string[]
  soname?: string
  /** DT_RPATH and DT_RUNPATH split at ':' (tokens like $ORIGIN left unexpanded). */
  rpath: string[]
  runpath: string[]
  /** Whether the file has a PT_DYNAMIC segment. */
  dynamic: boolean
}

// ELF constants from the System V gABI (elf.h).
const PT_LOAD = 1
const PT_DYNAMIC = 2
const PT_INTERP = 3
const DT_NULL = 0n
const DT_NEEDED = 1n
const DT_STRTAB = 5n
const DT_STRSZ = 10n
const DT_SONAME = 14n
const DT_RPATH = 15n
const DT_RUNPATH = 29n

interface Segment {
  type: number
  offset: number
  vaddr: bigint
  filesz: number
}

/** Reads bytes with pread so a 100 MB binary is never loaded whole. */
class Reader {
  constructor(
    readonly file: string,
    readonly fd: number,
    readonly size: number,
  ) {}
  read(offset: number, length: number, what: string): Buffer {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new KtstrError(`${this.file}: truncated ELF file (${what} at ${offset}+${length} is past the end, size ${this.size})`)
    }
    const buf = Buffer.alloc(length)
    let done = 0
    while (done < length) {
      const n = fs.readSync(this.fd, buf, done, length - done, offset + done)
      if (n === 0) throw new KtstrError(`${this.file}: truncated ELF file (short read of ${what})`)
      done += n
    }
    return buf
  }
}

/** Parses the ELF header, program headers and dynamic section of `file`. */
export function readElf(file: string): ElfInfo {
  let fd: number
  try {
    fd = fs.openSync(file, 'r')
  } catch (e) {
    throw new KtstrError(`cannot open ${file}: ${(e as Error).message}`, { cause: e })
  }
  try {
    return parse(new Reader(file, fd, fs.fstatSync(fd).size))
  } finally {
    fs.closeSync(fd)
  }
}

/** True when `file` starts with the ELF magic (cheap check for "is this a binary?"). */
export function isElf(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r')
    try {
      const b = Buffer.alloc(4)
      return fs.readSync(fd, b, 0, 4, 0) === 4 && b.readUInt32BE(0) === 0x7f454c46
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return false
  }
}

function parse(r: Reader): ElfInfo {
  const f = r.file
  if (r.size < 4 || r.read(0, 4, 'magic').readUInt32BE(0) !== 0x7f454c46) {
    throw new KtstrError(`${f} is not an ELF file (no \\x7fELF magic); pass a compiled binary`)
  }
  if (r.size < 64) throw new KtstrError(`${f}: truncated ELF file (${r.size} bytes, the ELF64 header alone is 64)`)
  const ident = r.read(0, 16, 'e_ident')
  if (ident[4] === 1) throw new KtstrError(`${f} is a 32-bit ELF file; only 64-bit (ELFCLASS64) binaries are supported`)
  if (ident[4] !== 2) throw new KtstrError(`${f}: unknown ELF class ${ident[4]}`)
  if (ident[5] !== 1) throw new KtstrError(`${f} is a big-endian ELF file; only little-endian binaries are supported`)
  const eh = r.read(0, 64, 'ELF header')
  const type = eh.readUInt16LE(16)
  const machine = eh.readUInt16LE(18)
  const phoff = Number(eh.readBigUInt64LE(32))
  const phentsize = eh.readUInt16LE(54)
  const phnum = eh.readUInt16LE(56)
  if (phnum > 0 && phentsize < 56) throw new KtstrError(`${f}: bad ELF program header size ${phentsize}`)

  const segs: Segment[] = []
  if (phnum > 0) {
    const ph = r.read(phoff, phentsize * phnum, 'program headers')
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize
      segs.push({
        type: ph.readUInt32LE(o),
        offset: Number(ph.readBigUInt64LE(o + 8)),
        vaddr: ph.readBigUInt64LE(o + 16),
        filesz: Number(ph.readBigUInt64LE(o + 32)),
      })
    }
  }

  const info: ElfInfo = { machine, type, needed: [], rpath: [], runpath: [], dynamic: false }
  const interp = segs.find((s) => s.type === PT_INTERP)
  if (interp) info.interpreter = cString(r.read(interp.offset, interp.filesz, 'PT_INTERP'), 0)

  const dyn = segs.find((s) => s.type === PT_DYNAMIC)
  if (!dyn) return info
  info.dynamic = true
  const d = r.read(dyn.offset, dyn.filesz, 'PT_DYNAMIC')
  const entries: [bigint, bigint][] = []
  let strtab: bigint | undefined
  let strsz: number | undefined
  for (let o = 0; o + 16 <= d.length; o += 16) {
    const tag = d.readBigInt64LE(o)
    const val = d.readBigUInt64LE(o + 8)
    if (tag === DT_NULL) break
    if (tag === DT_STRTAB) strtab = val
    else if (tag === DT_STRSZ) strsz = Number(val)
    else entries.push([tag, val])
  }
  const wanted = entries.filter(([t]) => t === DT_NEEDED || t === DT_SONAME || t === DT_RPATH || t === DT_RUNPATH)
  if (wanted.length === 0) return info
  if (strtab === undefined) throw new KtstrError(`${f}: ELF dynamic section has string references but no DT_STRTAB`)
  const strOff = vaddrToOffset(f, segs, strtab)
  // DT_STRSZ is optional in theory; fall back to the rest of the mapping segment.
  const strLen = strsz ?? Math.min(r.size - strOff, 1 << 20)
  // Only the strings asked for are read: node's table is megabytes, and this runs on every boot.
  const str = (v: bigint): string => {
    const i = Number(v)
    if (i >= strLen) throw new KtstrError(`${f}: ELF string offset ${i} is outside DT_STRTAB (${strLen} bytes)`)
    for (let window = 256; ; window *= 4) {
      const len = Math.min(window, strLen - i)
      const b = r.read(strOff + i, len, 'DT_STRTAB')
      if (b.indexOf(0) >= 0 || len === strLen - i) return cString(b, 0)
    }
  }
  for (const [tag, val] of wanted) {
    if (tag === DT_NEEDED) info.needed.push(str(val))
    else if (tag === DT_SONAME) info.soname = str(val)
    else if (tag === DT_RPATH) info.rpath.push(...splitPath(str(val)))
    else info.runpath.push(...splitPath(str(val)))
  }
  return info
}

/** DT_STRTAB holds a virtual address; the PT_LOAD segment containing it says where it is in the file. */
function vaddrToOffset(f: string, segs: Segment[], addr: bigint): number {
  for (const s of segs) {
    if (s.type === PT_LOAD && addr >= s.vaddr && addr < s.vaddr + BigInt(s.filesz)) {
      return s.offset + Number(addr - s.vaddr)
    }
  }
  throw new KtstrError(`${f}: DT_STRTAB address 0x${addr.toString(16)} is not inside any PT_LOAD segment`)
}

function cString(buf: Buffer, start: number): string {
  const end = buf.indexOf(0, start)
  return buf.toString('utf8', start, end < 0 ? buf.length : end)
}

function splitPath(s: string): string[] {
  return s.split(':').filter((p) => p !== '')
}
