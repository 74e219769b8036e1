import { describe, expect, it } from 'vitest'
import { formatCommand } from '../../src/kernel/build-log.js'
import {
  buildKey,
  builtFiles,
  bzImageCommand,
  configureCommands,
  kernelVersionFromMakefile,
  type MakePlan,
  schedulersCommand,
  upstreamVersion,
} from '../../src/kernel/build-plan.js'
import { debianPaholeVersion, paholeWrapperScript, parsePaholeVersion } from '../../src/kernel/pahole.js'
import { formatElapsed, makeTarget } from '../../src/kernel/progress.js'
import { installHint, parseClangMajor } from '../../src/kernel/toolchain.js'

const plan: MakePlan = {
  srcDir: '/c/src/linux',
  outDir: '/c/build/k/kbuild',
  scxOutDir: '/c/build/k/sched_ext',
  fragment: '/pkg/src/kernel/kconfig.fragment',
  pahole: '/c/tools/pahole/pahole',
  clang: '/usr/bin/clang-16',
  llvmStrip: '/usr/bin/llvm-strip-16',
  jobs: 2,
}

describe('make command lines', () => {
  it('configure: tinyconfig, merge the fragment in the output folder, olddefconfig', () => {
    expect(configureCommands(plan).map(formatCommand)).toEqual([
      'make -C /c/src/linux O=/c/build/k/kbuild PAHOLE=/c/tools/pahole/pahole tinyconfig',
      'sh /c/src/linux/scripts/kconfig/merge_config.sh -m -O /c/build/k/kbuild /c/build/k/kbuild/.config /pkg/src/kernel/kconfig.fragment',
      'make -C /c/src/linux O=/c/build/k/kbuild PAHOLE=/c/tools/pahole/pahole olddefconfig',
    ])
    expect(configureCommands(plan)[1]!.cwd).toBe('/c/build/k/kbuild')
  })

  it('bzImage with the job count', () => {
    expect(formatCommand(bzImageCommand(plan))).toBe('make -C /c/src/linux O=/c/build/k/kbuild PAHOLE=/c/tools/pahole/pahole -j2 bzImage')
  })

  it('passes the same PAHOLE= to every make, config targets included', () => {
    const makes = [...configureCommands(plan), bzImageCommand(plan), schedulersCommand(plan)].filter((c) => c.cmd === 'make')
    expect(makes).toHaveLength(4)
    for (const c of makes) expect(c.args).toContain(`PAHOLE=${plan.pahole}`)
  })

  it('schedulers: tools/sched_ext with clang, llvm-strip and the built vmlinux for BTF', () => {
    expect(formatCommand(schedulersCommand(plan))).toBe(
      'make -C /c/src/linux/tools/sched_ext O=/c/build/k/sched_ext PAHOLE=/c/tools/pahole/pahole CLANG=/usr/bin/clang-16 ' +
        'LLVM_STRIP=/usr/bin/llvm-strip-16 VMLINUX_BTF=/c/build/k/kbuild/vmlinux -j2',
    )
    expect(builtFiles(plan)).toEqual({
      bzImage: '/c/build/k/kbuild/arch/x86/boot/bzImage',
      config: '/c/build/k/kbuild/.config',
      schedulersDir: '/c/build/k/sched_ext/build/bin',
    })
  })

  it('quotes arguments with shell metacharacters when showing them', () => {
    expect(formatCommand({ cmd: 'apt-get', args: ['download', 'linux-source-6.12=6.12.117-1~deb12u1'] })).toBe("apt-get download 'linux-source-6.12=6.12.117-1~deb12u1'")
  })
})

describe('versions and keys', () => {
  it('reads the version from a kernel Makefile', () => {
    const mk = '# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n'
    expect(kernelVersionFromMakefile(mk)).toBe('6.12.117')
    expect(kernelVersionFromMakefile(mk.replace('SUBLEVEL = 117', 'SUBLEVEL = 0').replace('EXTRAVERSION =', 'EXTRAVERSION = -rc3'))).toBe('6.12.0-rc3')
    expect(kernelVersionFromMakefile('all:\n')).toBeUndefined()
  })

  it('takes the upstream part of a Debian version', () => {
    expect(upstreamVersion('6.12.117-1~deb12u1')).toBe('6.12.117')
    expect(upstreamVersion('6.12.95-1~bpo12+1')).toBe('6.12.95')
    expect(upstreamVersion('1:2.3-4')).toBe('2.3')
  })

  it('keys on version, source kind and a hash of source identity and fragment', () => {
    const k = buildKey('6.12.117', 'debian', 'debian:linux-source-6.12=6.12.117-1', 'CONFIG_A=y\n')
    expect(k).toMatch(/^6\.12\.117-debian-[0-9a-f]{10}$/)
    expect(buildKey('6.12.117', 'debian', 'debian:linux-source-6.12=6.12.117-1', 'CONFIG_A=y\n')).toBe(k)
    expect(buildKey('6.12.117', 'debian', 'debian:linux-source-6.12=6.12.117-1', 'CONFIG_B=y\n')).not.toBe(k)
    expect(buildKey('6.12.117', 'debian', 'debian:linux-source-6.12=6.12.117-2', 'CONFIG_A=y\n')).not.toBe(k)
    expect(buildKey('6.13.0-rc1/x', 'local', 'local:/l', '')).toMatch(/^6\.13\.0-rc1_x-local-/)
  })
})

describe('tool versions', () => {
  it('parses pahole versions like scripts/pahole-version.sh', () => {
    expect(parsePaholeVersion('v1.24\n')).toBe(124)
    expect(parsePaholeVersion('v1.30')).toBe(130)
    expect(parsePaholeVersion('garbage')).toBeUndefined()
    expect(debianPaholeVersion('1.30-1')).toBe(130)
    expect(debianPaholeVersion('1.24-4.1')).toBe(124)
  })

  it('writes a pahole wrapper that runs the private ld.so with the private libraries', () => {
    const s = paholeWrapperScript('/t/root', '/t/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2')
    expect(s.startsWith('#!/bin/sh\n')).toBe(true)
    expect(s).toContain(
      "exec '/t/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' --library-path '/t/root/lib/x86_64-linux-gnu:/t/root/usr/lib/x86_64-linux-gnu' '/t/root/usr/bin/pahole' \"$@\"",
    )
  })

  it('parses clang --version', () => {
    expect(parseClangMajor('Debian clang version 16.0.6 (15~deb12u1)\nTarget: x86_64-pc-linux-gnu')).toBe(16)
    expect(parseClangMajor('clang version 19.1.7')).toBe(19)
    expect(parseClangMajor('gcc')).toBeUndefined()
  })

  it('lists the packages to install when it cannot install them', () => {
    const hint = installHint(['flex', 'clang-16'])
    expect(hint).toContain('flex clang-16')
    expect(hint).toContain('apt-get install -y flex clang-16')
  })
})

describe('progress', () => {
  it('extracts the make target from kbuild and tools output', () => {
    expect(makeTarget('  CC      kernel/sched/core.o')).toBe('CC kernel/sched/core.o')
    expect(makeTarget('  LD [M]  foo.ko')).toBe('LD [M] foo.ko')
    expect(makeTarget('  CLANG-BPF /x/scx_simple.bpf.o')).toBe('CLANG-BPF /x/scx_simple.bpf.o')
    expect(makeTarget('  BTF     .btf.vmlinux.bin.o')).toBe('BTF .btf.vmlinux.bin.o')
    expect(makeTarget("make[1]: Entering directory '/x'")).toBeUndefined()
    expect(makeTarget('warning: something')).toBeUndefined()
  })

  it('formats elapsed time', () => {
    expect(formatElapsed(0)).toBe('0:00')
    expect(formatElapsed(75.9)).toBe('1:15')
    expect(formatElapsed(3725)).toBe('1:02:05')
  })
})
