import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { applyDocblock, specFromOptions } from '../../../plugin/spec.js'
import { MAX_TIMEOUT_S, MIN_MEMORY_MIB, maxMemoryMib } from '../../../src/vm/defaults.js'
import { parseDocblock as parseIn } from '../../../src/vm/spec/docblock.js'

const file = (docblock: string, body = "import { test } from 'vitest'\n") => `${docblock}\n${body}`
/** A docblock of a file in /p/test. */
const parseDocblock = (source: string) => parseIn(source, '/p/test')

describe('parseDocblock', () => {
  it('gives nothing for a file without one', () => {
    expect(parseDocblock("import { test } from 'vitest'\ntest('x', () => {})\n")).toEqual({})
    expect(parseDocblock('/** plain docs */\nexport {}\n')).toEqual({})
  })

  it('reads every key of the one-line form', () => {
    const src = file('/** @ktstr topology=1n2l4c1t memory=1024 scheduler=scx_simple sched-args="-v" backend=qemu timeout=60 kernel=/k/bzImage */')
    expect(parseDocblock(src)).toEqual({
      topology: '1n2l4c1t',
      memoryMib: 1024,
      scheduler: 'scx_simple',
      schedArgs: ['-v'],
      backend: 'qemu',
      timeoutS: 60,
      kernel: '/k/bzImage',
    })
  })

  it('merges @ktstr lines of a multi-line docblock and ignores other tags', () => {
    const src = file(
      ['/**', ' * Fairness under two cgroups.', ' * @vitest-environment node', ' * @ktstr topology=2n4l2c2t', ' * @ktstr memory=2048 timeout=12.5', ' */'].join('\n'),
    )
    expect(parseDocblock(src)).toEqual({ topology: '2n4l2c2t', memoryMib: 2048, timeoutS: 12.5 })
  })

  it('allows a shebang, a BOM and other comments before it', () => {
    const src = '\ufeff#!/usr/bin/env node\n// a license line\n/** @ktstr memory=512 */\nexport {}\n'
    expect(parseDocblock(src)).toEqual({ memoryMib: 512 })
  })

  it('splits sched-args like a shell', () => {
    expect(parseDocblock(file('/** @ktstr scheduler=scx_simple sched-args="-v --slice-us 5000" */')).schedArgs).toEqual(['-v', '--slice-us', '5000'])
    expect(parseDocblock(file(`/** @ktstr scheduler=x sched-args='--name "a b" -k' */`)).schedArgs).toEqual(['--name', 'a b', '-k'])
    expect(parseDocblock(file('/** @ktstr scheduler=x sched-args="" */')).schedArgs).toEqual([])
  })

  it('reads include= paths and a disk= spec, resolved against the file folder', () => {
    const doc = parseIn(file('/** @ktstr include=./bench.sh,/usr/bin/stress-ng disk=./scratch.img,ro,iops=100 */'), '/proj/tests')
    expect(doc.include).toEqual(['/proj/tests/bench.sh', '/usr/bin/stress-ng'])
    expect(doc.disks).toEqual([{ path: '/proj/tests/scratch.img', readOnly: true, iops: 100 }])
    expect(applyDocblock({ include: ['/opt/x'] }, doc).include).toEqual(['/opt/x', '/proj/tests/bench.sh', '/usr/bin/stress-ng'])
  })

  it('accepts a gauntlet preset name as the topology', () => {
    expect(parseDocblock(file('/** @ktstr topology=smt-2llc */')).topology).toBe('smt-2llc')
  })

  it('treats scheduler=eevdf (or none) as no sched_ext scheduler', () => {
    expect(parseDocblock(file('/** @ktstr scheduler=eevdf */')).scheduler).toBeNull()
    expect(parseDocblock(file('/** @ktstr scheduler=none */')).scheduler).toBeNull()
  })

  it.each([
    ['/** @ktstr topo=1n1l1c1t */', 'unknown @ktstr key "topo"'],
    ['/** @ktstr memory=1024 memory=2048 */', '@ktstr key "memory" is given twice'],
    ['/** @ktstr fast */', 'bad @ktstr entry "fast": expected key=value'],
    ['/** @ktstr topology=4cores */', 'bad @ktstr topology="4cores": expected NnNlNcNt'],
    ['/** @ktstr topology=0n1l1c1t */', 'bad @ktstr topology="0n1l1c1t": NUMA nodes must be at least 1'],
    ['/** @ktstr topology=2n3l1c1t */', 'bad @ktstr topology="2n3l1c1t": 3 LLCs cannot be spread evenly'],
    ['/** @ktstr memory=1G */', 'bad @ktstr memory="1G": expected a whole number of MiB'],
    [`/** @ktstr memory=${MIN_MEMORY_MIB - 1} */`, `from ${MIN_MEMORY_MIB} to ${maxMemoryMib()} (this host's memory)`],
    [`/** @ktstr memory=${maxMemoryMib() + 1} */`, `from ${MIN_MEMORY_MIB} to ${maxMemoryMib()} (this host's memory)`],
    ['/** @ktstr timeout=0 */', 'bad @ktstr timeout="0": expected a number of seconds above 0'],
    [`/** @ktstr timeout=${MAX_TIMEOUT_S + 1} */`, `at most ${MAX_TIMEOUT_S} (about 24 days`],
    ['/** @ktstr timeout=-5 */', 'bad @ktstr timeout="-5"'],
    ['/** @ktstr timeout=60s */', 'bad @ktstr timeout="60s"'],
    ['/** @ktstr backend=xen */', 'bad @ktstr backend="xen": expected qemu, kvm or auto'],
    ['/** @ktstr scheduler= */', 'bad @ktstr scheduler="": expected a scheduler name'],
    ['/** @ktstr disk=/tmp/x.img,rw */', 'bad @ktstr disk="/tmp/x.img,rw": bad disk option "rw": use ro'],
    ['/** @ktstr disk=/tmp/x.img,iops=0 */', 'use ro, iops=N or bps=N (N > 0)'],
    ['/** @ktstr include=a,,b */', 'bad @ktstr include="a,,b": expected comma-separated paths'],
    ['/** @ktstr scheduler=x sched-args="-v */', '@ktstr: unterminated " quote'],
    [`/** @ktstr scheduler=x sched-args='"-v' */`, 'bad @ktstr sched-args="\\"-v": unterminated " quote'],
  ])('rejects %s', (docblock, message) => {
    expect(() => parseDocblock(file(docblock))).toThrow(message)
  })

  it('rejects a @ktstr docblock that is not at the top of the file', () => {
    const src = "import { test } from 'vitest'\n/** @ktstr memory=512 */\ntest('x', () => {})\n"
    expect(() => parseDocblock(src)).toThrow('the @ktstr docblock must come first in the file')
  })
})

describe('applyDocblock over plugin defaults', () => {
  const defaults = specFromOptions({ scheduler: 'scx_simple', schedArgs: '-v', memory: 1024, timeout: 300 })

  it('validates and normalizes plugin options', () => {
    expect(defaults).toEqual({ scheduler: 'scx_simple', schedArgs: ['-v'], memoryMib: 1024, timeoutS: 300 })
    expect(specFromOptions({ schedArgs: ['-a', 'b c'], scheduler: 's' }).schedArgs).toEqual(['-a', 'b c'])
    expect(() => specFromOptions({ memory: 12 })).toThrow('bad ktstr() option memory=12: expected a whole number of MiB')
    expect(() => specFromOptions({ topology: '1x' })).toThrow('bad ktstr() option topology="1x"')
    expect(() => specFromOptions({ backend: 'vbox' as 'qemu' })).toThrow('bad ktstr() option backend="vbox"')
    expect(() => specFromOptions({ include: ['a', ''] })).toThrow('bad ktstr() option include=["a",""]: expected an array of paths')
    expect(() => specFromOptions({ schedArgs: [1] as unknown as string[], scheduler: 's' })).toThrow('bad ktstr() option schedArgs=[1]: expected an array of strings or one string')
    expect(() => specFromOptions({ schedArgs: '-v' })).toThrow('ktstr() option schedArgs given without a scheduler; add ktstr() option scheduler=<name>')
    expect(specFromOptions({ scheduler: 'eevdf', kernel: './k' })).toEqual({ kernel: path.resolve('k') })
  })

  it('lets the file override what it names and keeps the rest', () => {
    const spec = applyDocblock(defaults, parseDocblock(file('/** @ktstr memory=2048 topology=1n2l4c1t */')))
    expect(spec).toEqual({ scheduler: 'scx_simple', schedArgs: ['-v'], memoryMib: 2048, timeoutS: 300, topology: '1n2l4c1t' })
  })

  it('drops the default scheduler arguments when the file picks another scheduler', () => {
    const other = applyDocblock(defaults, { scheduler: 'scx_central' })
    expect(other.scheduler).toBe('scx_central')
    expect(other.schedArgs).toBeUndefined()
    expect(applyDocblock(defaults, { scheduler: 'scx_central', schedArgs: ['-x'] }).schedArgs).toEqual(['-x'])
    expect(applyDocblock(defaults, { schedArgs: ['-s', '1'] })).toMatchObject({ scheduler: 'scx_simple', schedArgs: ['-s', '1'] })
    const eevdf = applyDocblock(defaults, { scheduler: null })
    expect('scheduler' in eevdf || 'schedArgs' in eevdf).toBe(false)
  })

  it('refuses sched-args without a scheduler', () => {
    expect(() => applyDocblock({}, { schedArgs: ['-v'] })).toThrow('@ktstr sched-args given without a scheduler; add @ktstr scheduler=<name>')
    expect(() => applyDocblock(defaults, parseDocblock(file('/** @ktstr scheduler=eevdf sched-args=-v */')))).toThrow('sched-args given without a scheduler')
  })

  it('resolves a relative kernel path against the test file folder', () => {
    expect(parseDocblock(file('/** @ktstr kernel=../kernels/bzImage */')).kernel).toBe(path.resolve('/p/kernels/bzImage'))
    expect(parseDocblock(file('/** @ktstr kernel=auto */')).kernel).toBe('auto')
  })
})
