import fs from 'node:fs'
import { KtstrError } from '../util/errors.js'

/** One library entry of /etc/ld.so.cache. */
export interface LdCacheEntry {
  /** The name DT_NEEDED asks for, e.g. libc.so.6. */
  name: string
  /** Absolute path ld.so would open. */
  path: string
  /** Entry flags: low byte = type (3 = ELF libc6), high byte = arch (0x0300 = x86-64). */
  flags: number
  /** Nonzero for glibc-hwcaps subdirectory entries (bit 62 set = index into the extension). */
  hwcap: bigint
}

// Layout from glibc sysdeps/generic/dl-cache.h.
const OLD_MAGIC = 'ld.so-1.7.0'
const NEW_MAGIC = 'glibc-ld.so.cache1.1'
const NEW_HEADER = 48 // magic+version 20, nlibs 4, len_strings 4, flags 1, pad 3, extension_offset 4, unused 12
const NEW_ENTRY = 24 // flags i32, key u32, value u32, osversion u32, hwcap u64
const OLD_ENTRY = 12 // flags i32, key u32, value u32

export const FLAG_ELF_LIBC6 = 0x0003
const FLAG_TYPE_MASK = 0x00ff
const FLAG_REQUIRED_MASK = 0xff00

/** Arch byte ld.so requires for an object of this e_machine (dl-cache.h _DL_CACHE_DEFAULT_ID per arch). */
export function cacheArchFlag(machine: number): number | undefined {
  switch (machine) {
    case 62:
      return 0x0300 // EM_X86_64: FLAG_X8664_LIB64
    case 183:
      return 0x0a00 // EM_AARCH64: FLAG_AARCH64_LIB64
    default:
      return undefined
  }
}

/** Parses a glibc ld.so.cache (the "glibc-ld.so.cache1.1" format, optionally behind the old libc5 one). */
export function parseLdCache(buf: Buffer, file = 'ld.so.cache'): LdCacheEntry[] {
  let base = 0
  if (buf.length >= OLD_MAGIC.length && buf.toString('latin1', 0, OLD_MAGIC.length) === OLD_MAGIC) {
    // Old header: magic[11] (padded to 12), nlibs u32, then 12-byte entries; the new cache follows, 8-aligned.
    const nlibs = buf.readUInt32LE(12)
    base = align8(16 + nlibs * OLD_ENTRY)
  }
  if (buf.length < base + NEW_HEADER || buf.toString('latin1', base, base + NEW_MAGIC.length) !== NEW_MAGIC) {
    throw new KtstrError(`${file} is not a glibc ld.so.cache (no "${NEW_MAGIC}" header); run ldconfig`)
  }
  const nlibs = buf.readUInt32LE(base + 20)
  const end = base + NEW_HEADER + nlibs * NEW_ENTRY
  if (end > buf.length) throw new KtstrError(`${file} is truncated (${nlibs} entries do not fit in ${buf.length} bytes); run ldconfig`)
  // String offsets in the new format are relative to the start of the new header.
  const str = (off: number): string => {
    const at = base + off
    if (at >= buf.length) throw new KtstrError(`${file} has a string offset past its end; run ldconfig`)
    const z = buf.indexOf(0, at)
    return buf.toString('utf8', at, z < 0 ? buf.length : z)
  }
  const out: LdCacheEntry[] = []
  for (let i = 0; i < nlibs; i++) {
    const o = base + NEW_HEADER + i * NEW_ENTRY
    out.push({
      flags: buf.readInt32LE(o),
      name: str(buf.readUInt32LE(o + 4)),
      path: str(buf.readUInt32LE(o + 8)),
      hwcap: buf.readBigUInt64LE(o + 16),
    })
  }
  return out
}

/** A name → path lookup for one architecture, preferring plain entries over glibc-hwcaps ones. */
export class LdCache {
  private readonly byName = new Map<string, LdCacheEntry[]>()

  constructor(readonly entries: LdCacheEntry[]) {
    for (const e of entries) {
      const list = this.byName.get(e.name)
      if (list) list.push(e)
      else this.byName.set(e.name, [e])
    }
  }

  /** Path for `name` built for `machine` (e_machine), as ld.so's cache lookup returns it. */
  lookup(name: string, machine: number): string | undefined {
    const arch = cacheArchFlag(machine)
    const ok = (this.byName.get(name) ?? []).filter((e) => (e.flags & FLAG_TYPE_MASK) === FLAG_ELF_LIBC6 && (arch === undefined || (e.flags & FLAG_REQUIRED_MASK) === arch))
    // hwcap entries point into glibc-hwcaps/<level>/ subdirs; the baseline entry works on every CPU.
    return (ok.find((e) => e.hwcap === 0n) ?? ok[0])?.path
  }

  static load(file = '/etc/ld.so.cache'): LdCache | undefined {
    let buf: Buffer
    try {
      buf = fs.readFileSync(file)
    } catch {
      return undefined // no cache (e.g. musl or a minimal container): only the default dirs are searched
    }
    return new LdCache(parseLdCache(buf, file))
  }
}

function align8(n: number): number {
  return (n + 7) & ~7
}
