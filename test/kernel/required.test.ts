import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseKernelConfig } from '../../src/kernel/config.js'
import { hasSchedExt, missingRequired, REQUIRED_OPTIONS, unmetFragmentSettings } from '../../src/kernel/required.js'
import { haveRealKernel, REAL_KERNEL } from './helpers.js'

const fragmentText = fs.readFileSync(path.join(import.meta.dirname, '../../src/kernel/kconfig.fragment'), 'utf8')

describe('required options', () => {
  it('include what the brief and DESIGN §7 demand', () => {
    for (const o of [
      'SCHED_CLASS_EXT',
      'DEBUG_INFO_BTF',
      'BPF_SYSCALL',
      'BPF_JIT',
      'VIRTIO_CONSOLE',
      'VIRTIO_MMIO_CMDLINE_DEVICES',
      'VIRTIO_BLK',
      'SERIAL_8250_CONSOLE',
      'CGROUPS',
      'CPUSETS',
      'ACPI_NUMA',
      'SCHEDSTATS',
    ])
      expect(REQUIRED_OPTIONS).toContain(o)
  })

  it('are all set =y by the project fragment', () => {
    const fragment = parseKernelConfig(fragmentText)
    expect(REQUIRED_OPTIONS.filter((o) => fragment.get(`CONFIG_${o}`) !== 'y')).toEqual([])
  })

  it('reports the missing ones, treating m and absent as missing', () => {
    const config = parseKernelConfig('CONFIG_SCHED_CLASS_EXT=y\nCONFIG_VIRTIO_BLK=m\n# CONFIG_CPUSETS is not set\n')
    const missing = missingRequired(config)
    expect(missing).not.toContain('SCHED_CLASS_EXT')
    expect(missing).toContain('VIRTIO_BLK')
    expect(missing).toContain('CPUSETS')
    expect(missing).toContain('DEBUG_INFO_BTF')
    expect(missing).toHaveLength(REQUIRED_OPTIONS.length - 1)
    expect(missingRequired(config, ['SCHED_CLASS_EXT'])).toEqual([])
    expect(hasSchedExt(config)).toBe(true)
    expect(hasSchedExt(parseKernelConfig('# CONFIG_SCHED_CLASS_EXT is not set\n'))).toBe(false)
  })

  it('catches the silent BTF drop the notes describe', () => {
    const fragment = parseKernelConfig(fragmentText)
    const dropped = new Map(fragment)
    dropped.set('CONFIG_DEBUG_INFO_BTF', 'n')
    dropped.delete('CONFIG_SCHED_CLASS_EXT')
    expect(missingRequired(dropped)).toEqual(['SCHED_CLASS_EXT', 'DEBUG_INFO_BTF'])
    expect(unmetFragmentSettings(fragment, dropped).sort()).toEqual(['CONFIG_DEBUG_INFO_BTF=y (got n)', 'CONFIG_SCHED_CLASS_EXT=y (got n)'])
  })

  it('counts "is not set" in the fragment as met by an absent option', () => {
    expect(unmetFragmentSettings(parseKernelConfig('# CONFIG_MODULES is not set\n'), new Map())).toEqual([])
  })

  it.skipIf(!haveRealKernel)('are met by the prebuilt guest kernel, as is every fragment line', () => {
    const config = parseKernelConfig(fs.readFileSync(path.join(REAL_KERNEL, 'config'), 'utf8'))
    expect(missingRequired(config)).toEqual([])
    expect(unmetFragmentSettings(parseKernelConfig(fragmentText), config)).toEqual([])
  })
})
