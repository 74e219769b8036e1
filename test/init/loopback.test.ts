/** runtime/init/loopback.ts on the host: the ioctl path's errors (a real guest's `lo` is checked in test/vm/warm-start.test.ts). */
import { describe, expect, it } from 'vitest'
import { interfaceUp } from '../../runtime/init/loopback.js'

describe('interfaceUp', () => {
  it('names the failing call for an interface that does not exist', () => {
    expect(() => interfaceUp('ktstr-none0')).toThrow(/^ioctl 0x8913: ENODEV/)
  })

  it('refuses a name longer than the kernel takes (IFNAMSIZ - 1)', () => {
    expect(() => interfaceUp('x'.repeat(16))).toThrow(RangeError)
  })
})
