/** Open the guest end of the channel: the virtio-serial port named ktstr.0. */
import fs from 'node:fs'
import path from 'node:path'
import { Duplex } from 'node:stream'
import { CHANNEL_PORT_NAME, decodeHostMessage, Endpoint, FrameTracker, type GuestEndpoint, type GuestMessage, type HostMessage } from '../protocol/index.js'

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

/** Bytes per read of the port; a read returns at most one virtio buffer (a page) anyway. */
const READ_BYTES = 64 * 1024

/**
 * The port as a Duplex whose writes complete when write(2) has returned, so Endpoint.flush() means
 * the host has the bytes (a blocking write to a virtio port returns once the host has taken the
 * buffer). Not `Duplex.from({ readable, writable })`: its writes complete as soon as the inner
 * stream has queued them, so the init's last frames could still wait for write(2) when its flush
 * resolved, and a host slow to take them (our VMM nested under TCG) lost them to the power-off.
 *
 * Reads: a read of a virtio port returns one buffer of at most a page (virtio_console's
 * fill_readbuf), and an async read costs a trip through libuv's thread pool and back, which under
 * TCG made the host → guest direction crawl at ~1 MB/s. So a read waits asynchronously for the
 * start of a frame only; the rest of that frame, which the host wrote whole and is on its way, is
 * read synchronously here (FrameTracker says how much).
 * `readFd` and `writeFd` are one fd in the guest; two pipes in tests.
 */
export function portStream(readFd: number, writeFd: number): Duplex {
  const writable = fs.createWriteStream('', { fd: writeFd, autoClose: false })
  const frames = new FrameTracker()
  const buf = Buffer.allocUnsafe(READ_BYTES)
  let reading = false
  /** Hands `n` bytes of `buf` on; false when the reader wants no more for now. */
  const deliver = (n: number): boolean => {
    const chunk = Buffer.from(buf.subarray(0, n))
    frames.feed(chunk)
    return port.push(chunk)
  }
  const readMore = () => {
    if (reading || port.destroyed) return
    reading = true
    fs.read(readFd, buf, 0, buf.length, null, (err, n) => {
      reading = false
      if (port.destroyed) return
      if (err) return void port.destroy(err)
      if (n === 0) return void port.push(null)
      let wanted = deliver(n)
      try {
        for (let left = frames.remaining; left > 0; left = frames.remaining) {
          const m = fs.readSync(readFd, buf, 0, Math.min(left, buf.length), null)
          if (m === 0) return void port.push(null)
          wanted = deliver(m)
        }
      } catch (e) {
        return void port.destroy(e as Error)
      }
      if (wanted) readMore()
    })
  }
  const port: Duplex = new Duplex({
    read: readMore,
    write: (chunk: Buffer, _enc, done) => void writable.write(chunk, (err) => done(err ?? null)),
    // Several queued writes go down as one (WriteStream batches them into writev(2)).
    writev: (chunks, done) => {
      for (const c of chunks.slice(0, -1)) writable.write(c.chunk)
      writable.write(chunks.at(-1)!.chunk, (err) => done(err ?? null))
    },
    final: (done) => void writable.end(() => done()),
    destroy: (err, done) => {
      writable.destroy()
      done(err)
    },
  })
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
