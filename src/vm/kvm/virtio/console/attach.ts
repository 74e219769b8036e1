/**
 * The channel to the guest: a virtio-console device on virtio-mmio window 0 (Linux probes it
 * first, before the disks), its host end a ChannelStream.
 */

import type { GuestMemory } from '../../../memory/guest-memory.js'
import type { Bus } from '../../io-bus.js'
import { virtioMmioWindow } from '../../memory/layout.js'
import { VirtioMmioTransport, virtioMmioCmdline } from '../mmio.js'
import { ChannelStream } from './channel-stream.js'
import { VirtioConsole } from './device.js'

export function attachConsole(mmio: Bus, vm: { pulseIrq(gsi: number): void }, ram: GuestMemory): { channel: ChannelStream; cmdline: string; transport: VirtioMmioTransport } {
  const channel = new ChannelStream((bytes, queued) => device.send(bytes, queued))
  const device = new VirtioConsole({ ram, onData: (b) => channel.fromGuest(b) })
  const win = virtioMmioWindow(0)
  const transport = new VirtioMmioTransport(device, { onInterrupt: () => vm.pulseIrq(win.irq) })
  mmio.add('virtio-console', win.base, win.size, {
    read: (off, size) => transport.read(off, size),
    write: (off, size, v) => transport.write(off, size, Number(v)),
  })
  return { channel, cmdline: virtioMmioCmdline(win), transport }
}
