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
  return new Endpoint<HostMessage, GuestMessage>(portStream(fd, fd), decodeHostMessage)
}

/**
 * The port as a Duplex whose writes complete when write(2) has returned, so Endpoint.flush() means
 * the host has the bytes (a blocking write to a virtio port returns once the host has taken the
 * buffer). Not `Duplex.from({ readable, writable })`: its writes complete as soon as the inner
 * stream has queued them, so the init's last frames could still wait for write(2) when its flush
 * resolved, and a host slow to take them (our VMM nested under TCG) lost them to the power-off.
 * `readFd` and `writeFd` are one fd in the guest; two pipes in tests.
 */
export function portStream(readFd: number, writeFd: number): Duplex {
  const readable = fs.createReadStream('', { fd: readFd, autoClose: false, highWaterMark: 256 * 1024 })
  const writable = fs.createWriteStream('', { fd: writeFd, autoClose: false })
  const port: Duplex = new Duplex({
    read: () => void readable.resume(),
    write: (chunk: Buffer, _enc, done) => void writable.write(chunk, (err) => done(err ?? null)),
    // Several queued writes go down as one (WriteStream batches them into writev(2)).
    writev: (chunks, done) => {
      for (const c of chunks.slice(0, -1)) writable.write(c.chunk)
      writable.write(chunks.at(-1)!.chunk, (err) => done(err ?? null))
    },
    final: (done) => void writable.end(() => done()),
    destroy: (err, done) => {
      readable.destroy()
      writable.destroy()
      done(err)
    },
  })
  readable.on('data', (chunk) => {
    if (!port.push(chunk)) readable.pause()
  })
  readable.on('end', () => port.push(null))
  readable.on('error', (err) => port.destroy(err))
  writable.on('error', (err) => port.destroy(err))
  return port
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
