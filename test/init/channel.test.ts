/**
 * The guest's end of the channel (runtime/init/channel.ts) over real pipes: Endpoint.flush() must
 * mean every byte sent before it has been written (write(2) returned), since the init powers the
 * guest off after it. A host slow to take the bytes is a reader that drains the pipe slowly. Host
 * frames must come out whole and in order however their bytes arrive.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { portStream } from '../../runtime/init/channel.js'
import { encodeFrame, FrameType, StreamId } from '../../runtime/protocol/frame.js'
import { decodeHostMessage, Endpoint, type GuestMessage, type HostMessage } from '../../runtime/protocol/index.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c()
})

function pipes() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-channel-'))
  const toHost = path.join(dir, 'to-host')
  const toGuest = path.join(dir, 'to-guest')
  execFileSync('mkfifo', [toHost, toGuest])
  // O_RDWR: opening a FIFO so does not wait for the other end.
  const writeFd = fs.openSync(toHost, fs.constants.O_RDWR)
  const readFd = fs.openSync(toGuest, fs.constants.O_RDWR)
  const hostReadFd = fs.openSync(toHost, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  const hostWriteFd = fs.openSync(toGuest, fs.constants.O_WRONLY)
  const port = portStream(readFd, writeFd)
  cleanups.push(() => {
    port.destroy()
    // The port's pending read of to-guest returns once a byte is there.
    fs.writeSync(readFd, Buffer.from([0]))
    // (The port's streams may have closed their fds already.)
    const close = (fd: number) => fs.close(fd, () => {})
    close(writeFd)
    close(hostReadFd)
    close(hostWriteFd)
    setTimeout(() => close(readFd), 100)
    fs.rmSync(dir, { recursive: true })
  })
  return { port, hostReadFd, hostWriteFd }
}

/** Reads what the pipe holds now, without waiting. */
function drainNow(fd: number, buf: Buffer): number {
  let n = 0
  for (;;) {
    try {
      const got = fs.readSync(fd, buf, 0, buf.length, null)
      if (got === 0) return n
      n += got
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return n
      throw e
    }
  }
}

describe('the guest end of the channel', () => {
  it("takes host frames whole and in order while their bytes come in pieces, a frame's rest late", async () => {
    const { port, hostWriteFd } = pipes()
    const ep = new Endpoint<HostMessage, GuestMessage>(port, decodeHostMessage)
    const got: string[] = []
    ep.on('data', (stream, chunk) => got.push(`${stream}:${chunk.length}:${chunk[0]}`))
    ep.on('control', (msg) => got.push(msg.kind))
    const big = encodeFrame(FrameType.Data, Buffer.alloc(1 << 20, 9), StreamId.RunArchive)
    const small = encodeFrame(FrameType.Data, Buffer.alloc(10, 3), StreamId.Stdin)
    const start = encodeFrame(FrameType.Control, Buffer.from(JSON.stringify({ kind: 'start', epochMs: 1, seed: '00'.repeat(32) })))
    const wire = Buffer.concat([small, big, start])
    // A header split from its frame, then the 1 MiB frame's rest in pieces a while apart: the port
    // waits for the frame's rest, and hands on nothing broken or out of order. The host writes from
    // a thread of its own, as the real host is another process: the port waits on this thread.
    const cuts = [5, small.length + 3, small.length + 5000, small.length + 300_000, wire.length - 20, wire.length]
    const host = new Worker(
      `const fs = require('node:fs'); const { workerData: { fd, wire, cuts } } = require('node:worker_threads')
       let at = 0
       for (const cut of cuts) {
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
         for (; at < cut; ) at += fs.writeSync(fd, wire, at, cut - at)
       }`,
      { eval: true, workerData: { fd: hostWriteFd, wire, cuts } },
    )
    cleanups.push(() => void host.terminate())
    await vi.waitFor(() => expect(got).toContain('start'), { timeout: 5000 })
    expect(got).toEqual([`${StreamId.Stdin}:10:3`, `${StreamId.RunArchive}:${1 << 20}:9`, 'start'])
  })

  it('flush() resolves only once every frame sent before it is in the pipe, with the host reading slowly', async () => {
    const { port, hostReadFd } = pipes()
    const ep = new Endpoint<HostMessage, GuestMessage>(port, decodeHostMessage)
    // 1 MiB in frames of 32 KiB: far more than the pipe (64 KiB) and a write stream's buffer (16 KiB) hold.
    const chunk = Buffer.alloc(32 * 1024, 7)
    const exit = { kind: 'exit', code: 0, signal: null } as unknown as GuestMessage
    // Then small frames, as the init's last output and exit report are: a stream's buffer takes them at once.
    const line = Buffer.alloc(100, 8)
    for (let i = 0; i < 32; i++) ep.sendData(1, chunk)
    for (let i = 0; i < 50; i++) ep.sendData(1, line)
    ep.sendControl(exit)
    const sent =
      32 * encodeFrame(FrameType.Data, chunk, 1).length +
      50 * encodeFrame(FrameType.Data, line, 1).length +
      encodeFrame(FrameType.Control, Buffer.from(JSON.stringify(exit))).length
    const buf = Buffer.alloc(64 * 1024)
    let read = 0
    const slow = setInterval(() => {
      try {
        read += fs.readSync(hostReadFd, buf, 0, 16 * 1024, null)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e
      }
    }, 2)
    cleanups.push(() => clearInterval(slow))
    await ep.flush()
    clearInterval(slow)
    // Every byte is written by now: what the pipe holds is the rest, and nothing comes later.
    read += drainNow(hostReadFd, buf)
    expect(read).toBe(sent)
    await new Promise((r) => setTimeout(r, 100))
    expect(drainNow(hostReadFd, buf)).toBe(0)
  })
})
