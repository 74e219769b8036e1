/** Open the guest end of the channel: the virtio-serial port named ktstr.0. */
import fs from 'node:fs'
import path from 'node:path'
import { Duplex } from 'node:stream'
import { CHANNEL_PORT_NAME, decodeHostMessage, Endpoint, type GuestEndpoint, type GuestMessage, type HostMessage } from '../protocol/index.js'

const PORTS = '/sys/class/virtio-ports'

/** The /dev node of the named port; virtio devices are probed before init, but allow a moment. */
export async function findPort(name = CHANNEL_PORT_NAME, waitMs = 3000): Promise<string> {
  const deadline = Date.now() + waitMs
  for (;;) {
    for (const port of safeReaddir(PORTS)) {
      const portName = readTrim(path.join(PORTS, port, 'name'))
      if (portName === name) return path.join('/dev', port)
    }
    if (Date.now() > deadline) throw new Error(`virtio-serial port ${name} not found under ${PORTS}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export function openEndpoint(device: string): GuestEndpoint {
  // A virtio port allows one opener, so read and write share one O_RDWR fd.
  const fd = fs.openSync(device, 'r+')
  const readable = fs.createReadStream('', { fd, autoClose: false, highWaterMark: 256 * 1024 })
  const writable = fs.createWriteStream('', { fd, autoClose: false })
  const stream = Duplex.from({ readable, writable })
  return new Endpoint<HostMessage, GuestMessage>(stream, decodeHostMessage)
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}

function readTrim(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim()
  } catch {
    return undefined
  }
}
