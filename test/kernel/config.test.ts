import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { configCandidates, parseKernelConfig, readKernelConfig } from '../../src/kernel/config.js'
import { KtstrError } from '../../src/util/errors.js'
import { tempDir } from './helpers.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

describe('parseKernelConfig', () => {
  it('reads set, unset, numeric and string options and ignores other comments', () => {
    const c = parseKernelConfig(
      [
        '#',
        '# Automatically generated file; DO NOT EDIT.',
        'CONFIG_SCHED_CLASS_EXT=y',
        '# CONFIG_MODULES is not set',
        'CONFIG_NR_CPUS=256',
        'CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"',
        '  CONFIG_INDENTED=m  ',
        'not a config line',
        '',
      ].join('\n'),
    )
    expect(c.get('CONFIG_SCHED_CLASS_EXT')).toBe('y')
    expect(c.get('CONFIG_MODULES')).toBe('n')
    expect(c.get('CONFIG_NR_CPUS')).toBe('256')
    expect(c.get('CONFIG_CC_VERSION_TEXT')).toBe('"gcc (Debian 12.2.0-14) 12.2.0"')
    expect(c.get('CONFIG_INDENTED')).toBe('m')
    expect(c.size).toBe(5)
  })

  it('keeps the last value when an option repeats (as kconfig does)', () => {
    expect(parseKernelConfig('CONFIG_A=y\nCONFIG_A=n\n').get('CONFIG_A')).toBe('n')
  })
})

describe('readKernelConfig', () => {
  it('prefers a `config` file beside the bzImage, then `.config`', () => {
    const d = tempDir()
    dirs.push(d)
    fs.writeFileSync(path.join(d, 'bzImage'), 'x')
    fs.writeFileSync(path.join(d, '.config'), 'CONFIG_FROM_DOT=y\n')
    expect(readKernelConfig(path.join(d, 'bzImage'))).toMatchObject({ source: path.join(d, '.config') })
    fs.writeFileSync(path.join(d, 'config'), 'CONFIG_FROM_PLAIN=y\n')
    const r = readKernelConfig(path.join(d, 'bzImage'))
    expect(r.source).toBe(path.join(d, 'config'))
    expect(r.config.get('CONFIG_FROM_PLAIN')).toBe('y')
  })

  it('finds the .config at the root of a built tree for arch/x86/boot/bzImage', () => {
    const c = configCandidates('/src/linux/arch/x86/boot/bzImage')
    expect(c).toContain('/src/linux/.config')
  })

  it('says to put a config beside the image when there is neither a file nor a readable IKCONFIG', () => {
    const d = tempDir()
    dirs.push(d)
    const img = path.join(d, 'bzImage')
    fs.writeFileSync(img, Buffer.alloc(4096))
    expect(() => readKernelConfig(img)).toThrow(KtstrError)
    expect(() => readKernelConfig(img)).toThrow(`put its .config beside it as ${path.join(d, 'config')}`)
  })

  it('names the path when the image is missing', () => {
    const d = tempDir()
    dirs.push(d)
    expect(() => readKernelConfig(path.join(d, 'nope'))).toThrow(`cannot read kernel image ${path.join(d, 'nope')}: ENOENT`)
  })

  it('falls back to the embedded config of a (synthetic, gzip) bzImage', () => {
    const d = tempDir()
    dirs.push(d)
    const vmlinux = Buffer.concat([Buffer.from('\x7fELF...'), Buffer.from('IKCFG_ST'), zlib.gzipSync('CONFIG_SCHED_CLASS_EXT=y\n'), Buffer.from('IKCFG_ED')])
    const payload = zlib.gzipSync(vmlinux)
    const img = Buffer.alloc(1024 + 16 + payload.length)
    img[0x1f1] = 1
    img.write('HdrS', 0x202, 'latin1')
    img.writeUInt16LE(0x20f, 0x206)
    img.writeUInt32LE(16, 0x248)
    img.writeUInt32LE(payload.length, 0x24c)
    payload.copy(img, 1024 + 16)
    fs.writeFileSync(path.join(d, 'bzImage'), img)
    const r = readKernelConfig(path.join(d, 'bzImage'))
    expect(r.source).toBe('embedded')
    expect(r.config.get('CONFIG_SCHED_CLASS_EXT')).toBe('y')
  })
})
