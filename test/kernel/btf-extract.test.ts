/** Kernel BTF read on the host: extracted from the bzImage, cached beside the kernel by its hash, re-extracted when damaged. */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { btfCacheFile, kernelBtf } from '../../src/kernel/btf-cache.js'
import { elfSection, extractBtf } from '../../src/kernel/btf-extract.js'
import { parseKernelConfig, readKernelConfig } from '../../src/kernel/config.js'
import { importKernel } from '../../src/kernel/import.js'
import { loadKernelBtf } from '../../src/monitor/btf/kernel.js'
import { repoRoot } from '../helpers/repo.js'
import { haveRealKernel, REAL_KERNEL, tempDir } from './helpers.js'

if (!haveRealKernel) console.warn(`[ktstr tests] skipping the real-kernel BTF extraction tests: no guest kernel (${REAL_KERNEL || 'set KTSTR_KERNEL or run ktstr kernel build'})`)

/** A minimal ELF64 with a section-name table and the given sections. */
function elf(sections: Record<string, Uint8Array>): Buffer {
  const names = ['', '.shstrtab', ...Object.keys(sections)]
  const shstr = Buffer.from(`${names.join('\0')}\0`)
  const nameOff = (i: number) => names.slice(0, i).reduce((n, s) => n + s.length + 1, 0)
  const bodies = [Buffer.alloc(0), shstr, ...Object.values(sections).map((s) => Buffer.from(s))]
  let at = 64
  const offsets = bodies.map((b) => {
    const o = at
    at += b.length
    return o
  })
  const shoff = at
  const h = Buffer.alloc(64)
  h.writeUInt32BE(0x7f454c46, 0)
  h[4] = 2
  h[5] = 1
  h.writeBigUInt64LE(BigInt(shoff), 0x28)
  h.writeUInt16LE(64, 0x3a)
  h.writeUInt16LE(bodies.length, 0x3c)
  h.writeUInt16LE(1, 0x3e)
  const sh = Buffer.alloc(64 * bodies.length)
  bodies.forEach((b, i) => {
    if (i === 0) return
    sh.writeUInt32LE(nameOff(i), i * 64)
    sh.writeUInt32LE(i === 1 ? 3 : 1, i * 64 + 4)
    sh.writeBigUInt64LE(BigInt(offsets[i]!), i * 64 + 24)
    sh.writeBigUInt64LE(BigInt(b.length), i * 64 + 32)
  })
  return Buffer.concat([h, ...bodies, sh])
}

/** A bzImage shell around `payload`, as the x86 boot protocol lays it out. */
function bzImage(payload: Uint8Array): Buffer {
  const setup = Buffer.alloc(2 * 512)
  setup[0x1f1] = 1
  setup.write('HdrS', 0x202, 'latin1')
  setup.writeUInt16LE(0x20f, 0x206)
  setup.writeUInt32LE(0, 0x248)
  setup.writeUInt32LE(payload.length, 0x24c)
  return Buffer.concat([setup, payload])
}

const BTF_CONFIG = parseKernelConfig('CONFIG_DEBUG_INFO_BTF=y\n')

describe('kernel BTF extraction', () => {
  let dir: string
  let savedXdg: string | undefined
  beforeEach(() => {
    dir = tempDir('ktstr-btf-extract-')
    savedXdg = process.env.XDG_CACHE_HOME
    process.env.XDG_CACHE_HOME = path.join(dir, 'cache')
  })
  afterEach(() => {
    if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME
    else process.env.XDG_CACHE_HOME = savedXdg
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('takes .BTF out of a gzip bzImage and says why when there is none', () => {
    const blob = Buffer.from('\x9f\xeb\x01\x00 pretend btf', 'latin1')
    expect(Buffer.from(elfSection(elf({ '.text': Buffer.from('code'), '.BTF': blob }), '.BTF')!)).toEqual(blob)
    const r = extractBtf(bzImage(zlib.gzipSync(elf({ '.BTF': blob }))), 'k')
    expect(r.ok && Buffer.from(r.blob)).toEqual(blob)
    expect(extractBtf(bzImage(zlib.gzipSync(elf({ '.text': Buffer.from('x') }))), 'k')).toEqual({
      ok: false,
      reason: 'kernel k has no .BTF section; build it with CONFIG_DEBUG_INFO_BTF=y (ktstr kernel build does)',
    })
    expect(extractBtf(bzImage(Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0)), 'k')).toEqual({
      ok: false,
      reason: 'cannot read BTF from kernel k: payload is xz-compressed; only gzip and zstd can be read',
    })
    expect(extractBtf(bzImage(zlib.gzipSync('not an elf')), 'k')).toEqual({ ok: false, reason: 'cannot read BTF from kernel k: the payload is not an ELF file' })
    expect(extractBtf(Buffer.from('junk'), 'k')).toEqual({ ok: false, reason: 'cannot read BTF from kernel k: not a bzImage (no "HdrS" boot header)' })
  })

  it('a kernel built without CONFIG_DEBUG_INFO_BTF gives one line, and so does a missing bzImage', () => {
    const k = { bzImage: path.join(dir, 'bzImage'), dir, config: parseKernelConfig('# CONFIG_DEBUG_INFO_BTF is not set\n') }
    expect(kernelBtf(k)).toEqual({ ok: false, reason: `kernel ${k.bzImage} was built without CONFIG_DEBUG_INFO_BTF=y, so it has no BTF; build one with \`ktstr kernel build\`` })
    expect(loadKernelBtf({ ...k, config: BTF_CONFIG })).toEqual({ ok: false, reason: `cannot read kernel ${k.bzImage}: ENOENT` })
  })

  it('keeps the BTF of a cache entry inside the entry, of any other kernel under <cache>/btf', () => {
    const entry = path.join(dir, 'cache', 'ktstr', 'kernels', '6.12.1-abc')
    const sha = 'ab'.repeat(32)
    expect(btfCacheFile({ bzImage: path.join(entry, 'bzImage'), dir: entry }, sha)).toBe(path.join(entry, `vmlinux-${'ab'.repeat(8)}.btf`))
    expect(btfCacheFile({ bzImage: '/x/bzImage', dir: '/x' }, sha)).toBe(path.join(dir, 'cache', 'ktstr', 'btf', `vmlinux-${'ab'.repeat(8)}.btf`))
  })

  it.skipIf(!haveRealKernel)(
    'extracts the real kernel once, then reads the cache; a damaged cache file is extracted again',
    () => {
      const k = { bzImage: path.join(REAL_KERNEL, 'bzImage'), dir: REAL_KERNEL, config: readKernelConfig(path.join(REAL_KERNEL, 'bzImage')).config }
      let t = performance.now()
      const first = kernelBtf(k)
      const extractMs = performance.now() - t
      if (!first.ok) throw new Error(first.reason)
      expect(first.fromCache).toBe(false)
      expect(first.file).toBe(path.join(dir, 'cache', 'ktstr', 'btf', `vmlinux-${first.sha256.slice(0, 16)}.btf`))
      expect(fs.readFileSync(first.file!).equals(first.blob)).toBe(true)
      t = performance.now()
      const second = kernelBtf(k)
      const cachedMs = performance.now() - t
      expect(second.ok && second.fromCache && Buffer.from(second.blob).equals(first.blob)).toBe(true)
      console.log(`[btf] ${first.blob.length} bytes: extracted in ${extractMs.toFixed(0)} ms, read from the cache in ${cachedMs.toFixed(0)} ms`)

      fs.truncateSync(first.file!, 1000)
      const afterCut = kernelBtf(k)
      expect(afterCut.ok && !afterCut.fromCache && fs.statSync(first.file!).size === first.blob.length).toBe(true)

      // Header intact but a type record damaged (kind 31): only a full parse notices; the loader extracts again.
      const bad = Buffer.from(first.blob)
      bad[bad.readUInt32LE(4) + bad.readUInt32LE(8) + 7] = 0x1f
      fs.writeFileSync(first.file!, bad)
      const loaded = loadKernelBtf(k)
      expect(loaded.ok && !loaded.fromCache && loaded.btf.struct('rq').size).toBeGreaterThan(0)
      expect(fs.readFileSync(first.file!).equals(first.blob)).toBe(true)
      expect(fs.readdirSync(path.dirname(first.file!))).toEqual([path.basename(first.file!)])
    },
    60_000,
  )

  it.skipIf(!haveRealKernel)(
    'an imported kernel carries its BTF in its cache entry from the start',
    () => {
      const { kernel } = importKernel(REAL_KERNEL)
      const r = kernelBtf(kernel)
      if (!r.ok) throw new Error(r.reason)
      expect(r.fromCache).toBe(true)
      expect(r.file).toBe(path.join(kernel.dir, `vmlinux-${r.sha256.slice(0, 16)}.btf`))
      expect(fs.readdirSync(kernel.dir).sort()).toEqual(['bzImage', 'config', 'meta.json', path.basename(r.file!), 'scx'].sort())
    },
    60_000,
  )

  it.skipIf(!haveRealKernel)(
    'three processes extracting at once all get the whole blob and leave one file',
    async () => {
      const mod = path.join(repoRoot, 'dist', 'src', 'kernel', 'btf-cache.js')
      expect(fs.existsSync(mod), `${mod} (npm run build)`).toBe(true)
      const script = `import { kernelBtf } from ${JSON.stringify(mod)}
const r = kernelBtf({ bzImage: ${JSON.stringify(path.join(REAL_KERNEL, 'bzImage'))}, dir: ${JSON.stringify(REAL_KERNEL)} })
console.log(JSON.stringify(r.ok ? { bytes: r.blob.length, file: r.file } : r))`
      const run = () => promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, XDG_CACHE_HOME: path.join(dir, 'cache') } })
      const outs = (await Promise.all([run(), run(), run()])).map((o) => JSON.parse(o.stdout))
      expect(new Set(outs.map((o) => JSON.stringify(o))).size).toBe(1)
      const file = outs[0].file as string
      expect(fs.statSync(file).size).toBe(outs[0].bytes)
      expect(fs.readdirSync(path.dirname(file))).toEqual([path.basename(file)])
    },
    120_000,
  )
})
