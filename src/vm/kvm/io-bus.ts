/**
 * Where a trapped port or MMIO access goes: ranges of the address space, each with a handler.
 * Unclaimed port reads float high (0xff…), as on a PC bus; unclaimed writes are dropped.
 */
import type { AccessResult, DeviceAccess } from './vcpu/thread.js'

export interface BusHandler {
  read(offset: number, size: number): number | bigint
  // biome-ignore lint/suspicious/noConfusingVoidType: a device's write may return nothing (void), not only undefined
  write(offset: number, size: number, value: number | bigint): void | AccessResult['stop']
}

interface Range {
  base: number
  length: number
  handler: BusHandler
  name: string
}

export class Bus {
  private readonly ranges: Range[] = []

  constructor(private readonly kind: 'io' | 'mmio') {}

  add(name: string, base: number, length: number, handler: BusHandler): void {
    for (const r of this.ranges) {
      if (base < r.base + r.length && r.base < base + length) throw new Error(`${this.kind} range of ${name} overlaps ${r.name}`)
    }
    this.ranges.push({ base, length, handler, name })
  }

  access(a: DeviceAccess): AccessResult {
    const r = this.ranges.find((x) => a.addr >= x.base && a.addr < x.base + x.length)
    if (!r) return { value: a.write ? 0n : BigInt(2 ** (8 * a.size)) - 1n }
    const offset = a.addr - r.base
    if (a.write) {
      const stop = r.handler.write(offset, a.size, a.size === 8 ? a.value : Number(a.value))
      return stop ? { stop } : {}
    }
    return { value: BigInt(r.handler.read(offset, a.size)) }
  }
}
