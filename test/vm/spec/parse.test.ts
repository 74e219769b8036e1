/** The one VM spec parser: the same rules and the same words for every source. */
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import type { RunMode } from '../../../runtime/protocol/index.js'
import { vmRequestFrom } from '../../../src/cli/vm-options.js'
import { checkRequest, parseSpec } from '../../../src/vm/spec/parse.js'

const exec: RunMode = { kind: 'exec', argv: ['true'], tty: false }

describe('parseSpec', () => {
  it('names a bad value the way each source spells it', () => {
    expect(() => parseSpec({ backend: 'xen' }, 'flag')).toThrow('bad --backend="xen": expected qemu, kvm or auto')
    expect(() => parseSpec({ backend: 'xen' }, 'docblock')).toThrow('bad @ktstr backend="xen": expected qemu, kvm or auto')
    expect(() => parseSpec({ backend: 'xen' }, 'option')).toThrow('bad ktstr() option backend="xen": expected qemu, kvm or auto')
    expect(() => parseSpec({ 'sched-args': 7 }, 'request')).toThrow('bad schedArgs=7: expected an array of strings or one string')
  })

  it('checks CLI flags like any other source', () => {
    expect(() => vmRequestFrom({ topology: '2n3l1c1t' }, exec)).toThrow('bad --topology="2n3l1c1t": 3 LLCs cannot be spread evenly')
    expect(() => vmRequestFrom({ kernel: '' }, exec)).toThrow('bad --kernel="": expected a kernel path or cache key')
    expect(() => vmRequestFrom({ scheduler: 'x', 'sched-args': '"-v' }, exec)).toThrow('bad --sched-args="\\"-v": unterminated " quote')
    expect(() => vmRequestFrom({ 'sched-args': '-v' }, exec)).toThrow('--sched-args given without a scheduler; add --scheduler=<name>')
    expect(() => vmRequestFrom({ env: ['X'] }, exec)).toThrow('bad --env="X": expected NAME=VALUE')
  })

  it('takes the monitor rate and the stall threshold as whole numbers or off, from every source', () => {
    expect(parseSpec({ 'stall-ms': '2500', 'monitor-hz': 'off' }, 'docblock')).toEqual({ stallMs: 2500, monitorHz: 'off' })
    expect(parseSpec({ 'stall-ms': 'off', 'monitor-hz': 20 }, 'option')).toEqual({ stallMs: 'off', monitorHz: 20 })
    expect(() => parseSpec({ 'stall-ms': 'abc' }, 'docblock')).toThrow('bad @ktstr stall-ms="abc": expected a whole number of ms from 100 to 2147483000, or off')
    expect(() => vmRequestFrom({ 'stall-ms': '50' }, exec)).toThrow('bad --stall-ms="50": expected a whole number of ms from 100 to')
    expect(() => parseSpec({ 'monitor-hz': 0 }, 'option')).toThrow('bad ktstr() option monitorHz=0: expected a whole number of samples per second from 1 to 1000, or off')
    expect(() => parseSpec({ 'monitor-hz': '10.5' }, 'flag')).toThrow('bad --monitor-hz="10.5"')
  })

  it('takes warm start as true or false (docblock, option), --cold as false', () => {
    expect(parseSpec({ warm: 'false' }, 'docblock')).toEqual({ warm: false })
    expect(parseSpec({ warm: true }, 'option')).toEqual({ warm: true })
    expect(vmRequestFrom({ cold: true }, exec)).toEqual({ mode: exec, warm: false })
    expect(vmRequestFrom({}, exec)).toEqual({ mode: exec })
    expect(() => parseSpec({ warm: 'no' }, 'docblock')).toThrow('bad @ktstr warm="no": expected true or false')
    expect(() => parseSpec({ warm: 1 }, 'option')).toThrow('bad ktstr() option warm=1: expected true or false')
  })

  it('takes each --include as one path (commas and all), resolved against the working folder', () => {
    expect(vmRequestFrom({ include: ['a,b', '/c'], scheduler: 'eevdf' }, exec)).toEqual({ mode: exec, include: [path.resolve('a,b'), '/c'] })
  })
})

describe('checkRequest (bootGuest given a VmRequest directly)', () => {
  it('holds it to the same rules and normalizes it', () => {
    expect(() => checkRequest({ mode: exec, topology: 'eight' })).toThrow('bad topology="eight": expected NnNlNcNt')
    const disks = [{ path: '/d.img', readOnly: false }]
    expect(checkRequest({ mode: exec, scheduler: 'none', include: ['x'], disks })).toEqual({
      mode: exec,
      scheduler: undefined,
      include: [path.resolve('x')],
      disks,
    })
  })
})
