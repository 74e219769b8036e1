// KvmVm's eventfd registrations against the real KVM_IOEVENTFD / KVM_IRQFD, on a VM that never
// gets a vCPU (nothing runs): KVM's collision rules show what was registered. Skips where
// /dev/kvm cannot be opened (a VM can be created even where guests cannot run).
import { afterEach, describe, expect, it } from 'vitest'
import { EFD_CLOEXEC } from '../../../native-shims/constants.js'
import * as libc from '../../../native-shims/libc.js'
import { KvmSystem, type KvmVm } from '../../../src/vm/kvm/system.js'

function openKvm(): KvmSystem | string {
  try {
    return new KvmSystem()
  } catch (e) {
    return (e as Error).message
  }
}
const probe = openKvm()
const skip = typeof probe === 'string' ? probe : undefined
if (typeof probe !== 'string') probe.close()
if (skip) console.warn(`[ktstr tests] skipping the KVM eventfd registration tests: ${skip}`)

const code = (f: () => void) => {
  try {
    f()
    return 'ok'
  } catch (e) {
    return (e as { code?: string }).code
  }
}

describe.skipIf(skip !== undefined)('KvmVm eventfds', () => {
  const open: (() => void)[] = []
  afterEach(() =>
    open
      .splice(0)
      .reverse()
      .forEach((f) => f()),
  )

  function vm(): KvmVm {
    const sys = new KvmSystem()
    const v = sys.createVm()
    open.push(
      () => sys.close(),
      () => v.close(),
    )
    v.setupInterruptControllers()
    return v
  }
  function eventfd(): number {
    const fd = libc.eventfd(0, EFD_CLOEXEC)
    open.push(() => libc.close(fd))
    return fd
  }

  it('addIoeventfd registers a 4-byte MMIO write of one value at one address', () => {
    const v = vm()
    const a = eventfd()
    v.addIoeventfd(a, 0xd000_1050, 4, 0)
    expect(code(() => v.addIoeventfd(eventfd(), 0xd000_1050, 4, 0))).toBe('EEXIST') // the same (addr, len, value)
    // Other values, lengths and addresses are separate registrations: the datamatch flag was set.
    expect(code(() => v.addIoeventfd(eventfd(), 0xd000_1050, 4, 1))).toBe('ok')
    expect(code(() => v.addIoeventfd(eventfd(), 0xd000_1050, 2, 0))).toBe('ok')
    expect(code(() => v.addIoeventfd(eventfd(), 0xd000_2050, 4, 0))).toBe('ok')
    // Without a datamatch every value matches, so it collides with the registrations above.
    expect(code(() => v.addIoeventfd(eventfd(), 0xd000_1050, 4))).toBe('EEXIST')
    expect(code(() => v.addIoeventfd(eventfd(), 0xd000_3050, 4))).toBe('ok')
  })

  it('addIrqfd binds an eventfd to one GSI', () => {
    const v = vm()
    const a = eventfd()
    v.addIrqfd(a, 6)
    expect(code(() => v.addIrqfd(a, 6))).toBe('EBUSY') // this eventfd is already an irqfd
    expect(code(() => v.addIrqfd(eventfd(), 7))).toBe('ok')
  })
})
