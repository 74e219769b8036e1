/**
 * How many guests the host can run at once without oversubscribing it: each guest's vCPUs get a
 * host CPU, and its RAM plus the VMM's own overhead fit in the memory that is free now.
 */
import os from 'node:os'

/** CPUs and MiB of memory: what a guest takes, or what the host has. */
export interface GuestSize {
  cpus: number
  memoryMib: number
}
export type HostCapacity = GuestSize

/** QEMU's own memory beside guest RAM (device state, TCG translation cache); measured well below this. */
export const VMM_OVERHEAD_MIB = 256
/** Left for Vitest, Vite and the rest of the host. */
export const HOST_RESERVE_MIB = 512

export function hostCapacity(): HostCapacity {
  return {
    cpus: os.availableParallelism(),
    memoryMib: Math.max(0, Math.floor(os.freemem() / 2 ** 20) - HOST_RESERVE_MIB),
  }
}

const need = (g: GuestSize): GuestSize => ({ cpus: g.cpus, memoryMib: g.memoryMib + VMM_OVERHEAD_MIB })

/** Guests of this size that fit at once; at least 1 (a guest larger than the host still runs, alone). */
export function maxGuests(size: GuestSize, host: HostCapacity = hostCapacity()): number {
  const n = need(size)
  return Math.max(1, Math.min(Math.floor(host.cpus / n.cpus), Math.floor(host.memoryMib / n.memoryMib)))
}

/**
 * Admits guests while their summed size fits the host; a guest that does not fit waits (first come,
 * first served) until running ones finish. One that could never fit is admitted when nothing runs.
 */
export class ResourceGate {
  private used: GuestSize = { cpus: 0, memoryMib: 0 }
  private running = 0
  private readonly waiting: { size: GuestSize; admit: () => void }[] = []

  constructor(readonly capacity: HostCapacity) {}

  /** Resolves with a release function once admitted; rejects if `signal` aborts first. */
  acquire(size: GuestSize, signal?: AbortSignal): Promise<() => void> {
    const n = need(size)
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      const entry = {
        size: n,
        admit: () => {
          signal?.removeEventListener('abort', onAbort)
          this.running++
          this.used = { cpus: this.used.cpus + n.cpus, memoryMib: this.used.memoryMib + n.memoryMib }
          let released = false
          resolve(() => {
            if (released) return
            released = true
            this.running--
            this.used = { cpus: this.used.cpus - n.cpus, memoryMib: this.used.memoryMib - n.memoryMib }
            this.pump()
          })
        },
      }
      const onAbort = () => {
        const i = this.waiting.indexOf(entry)
        if (i >= 0) this.waiting.splice(i, 1)
        reject(signal!.reason)
        this.pump()
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(entry)
      this.pump()
    })
  }

  get active(): number {
    return this.running
  }

  private fits(n: GuestSize): boolean {
    if (this.running === 0) return true
    return this.used.cpus + n.cpus <= this.capacity.cpus && this.used.memoryMib + n.memoryMib <= this.capacity.memoryMib
  }

  private pump(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.size)) this.waiting.shift()!.admit()
  }
}
