import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { parseKernelConfig } from '../../src/kernel/config.js'
import { bzImagePayload, decompressPayload, IkconfigError, ikconfigFromBzImage, ikconfigFromVmlinux, payloadCompression } from '../../src/kernel/ikconfig.js'
import { haveRealKernel, REAL_KERNEL } from './helpers.js'

if (!haveRealKernel) console.warn(`skipping the real-bzImage IKCONFIG test: ${REAL_KERNEL}/bzImage or config is missing`)

describe('embedded IKCONFIG', () => {
  it.skipIf(!haveRealKernel)('extracts from the prebuilt zstd bzImage exactly the config file beside it', () => {
    const image = fs.readFileSync(path.join(REAL_KERNEL, 'bzImage'))
    expect(payloadCompression(bzImagePayload(image))).toBe('zstd')
    const embedded = parseKernelConfig(ikconfigFromBzImage(image))
    const file = parseKernelConfig(fs.readFileSync(path.join(REAL_KERNEL, 'config'), 'utf8'))
    expect(embedded.size).toBeGreaterThan(500)
    expect(embedded.get('CONFIG_SCHED_CLASS_EXT')).toBe('y')
    expect(Object.fromEntries(embedded)).toEqual(Object.fromEntries(file))
  })

  it('recognises the compressions the kernel can use', () => {
    expect(payloadCompression(zlib.gzipSync('x'))).toBe('gzip')
    expect(payloadCompression(Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd))).toBe('zstd')
    expect(payloadCompression(Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0))).toBe('xz')
    expect(payloadCompression(Uint8Array.of(0x5d, 0, 0, 0x80))).toBe('lzma')
    expect(payloadCompression(Buffer.from('BZh9'))).toBe('bzip2')
    expect(payloadCompression(Uint8Array.of(0x02, 0x21, 0x4c, 0x18))).toBe('lz4')
    expect(payloadCompression(Uint8Array.of(0x89, 0x4c, 0x5a, 0x4f))).toBe('lzo')
    expect(payloadCompression(Uint8Array.of(1, 2, 3, 4))).toBe('unknown')
  })

  it('refuses compressions it cannot read, naming them', () => {
    expect(() => decompressPayload(Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0))).toThrow(/xz-compressed; only gzip and zstd/)
  })

  it('rejects a file without the HdrS boot header', () => {
    expect(() => bzImagePayload(Buffer.alloc(4096))).toThrow(IkconfigError)
  })

  it('reports a vmlinux without IKCONFIG', () => {
    expect(() => ikconfigFromVmlinux(Buffer.from('no marker here'))).toThrow(/CONFIG_IKCONFIG is not set/)
  })
})
