import { describe, expect, it } from 'vitest'
import { maxGuests, ResourceGate, VMM_OVERHEAD_MIB } from '../../plugin/capacity.js'

describe('maxGuests', () => {
  it('is bounded by host CPUs and by memory, and is at least 1', () => {
    const guest = { cpus: 2, memoryMib: 1024 }
    expect(maxGuests(guest, { cpus: 16, memoryMib: 64 * 1024 })).toBe(8)
    expect(maxGuests(guest, { cpus: 16, memoryMib: 3 * (1024 + VMM_OVERHEAD_MIB) })).toBe(3)
    expect(maxGuests(guest, { cpus: 2, memoryMib: 64 * 1024 })).toBe(1)
    expect(maxGuests({ cpus: 8, memoryMib: 1024 }, { cpus: 2, memoryMib: 512 })).toBe(1)
  })
})

describe('ResourceGate', () => {
  it('admits guests while they fit and queues the rest in order', async () => {
    const gate = new ResourceGate({ cpus: 4, memoryMib: 100_000 })
    const order: string[] = []
    const a = await gate.acquire({ cpus: 2, memoryMib: 512 })
    const b = await gate.acquire({ cpus: 2, memoryMib: 512 })
    const c = gate.acquire({ cpus: 2, memoryMib: 512 }).then((r) => (order.push('c'), r))
    const d = gate.acquire({ cpus: 1, memoryMib: 512 }).then((r) => (order.push('d'), r))
    await new Promise((r) => setTimeout(r, 10))
    expect(order).toEqual([])
    expect(gate.active).toBe(2)
    a()
    a() // releasing twice frees once
    const releaseC = await c
    await new Promise((r) => setTimeout(r, 10))
    expect(order).toEqual(['c'])
    b()
    ;(await d)()
    releaseC()
    expect(gate.active).toBe(0)
  })

  it('runs a guest larger than the host alone', async () => {
    const gate = new ResourceGate({ cpus: 2, memoryMib: 1024 })
    const big = await gate.acquire({ cpus: 8, memoryMib: 4096 })
    let second = false
    const p = gate.acquire({ cpus: 1, memoryMib: 128 }).then((r) => ((second = true), r))
    await new Promise((r) => setTimeout(r, 10))
    expect(second).toBe(false)
    big()
    ;(await p)()
  })

  it('leaves the queue when the wait is aborted', async () => {
    const gate = new ResourceGate({ cpus: 1, memoryMib: 100_000 })
    const first = await gate.acquire({ cpus: 1, memoryMib: 1 })
    const ac = new AbortController()
    const waiting = gate.acquire({ cpus: 1, memoryMib: 1 }, ac.signal)
    ac.abort(new Error('cancelled'))
    await expect(waiting).rejects.toThrow('cancelled')
    first()
    expect(gate.active).toBe(0)
  })
})
