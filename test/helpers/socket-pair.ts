/** A connected pair of unix sockets, as the host and guest ends of the channel. */
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export async function socketPair(): Promise<[net.Socket, net.Socket, () => void]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-ep-'))
  const sock = path.join(dir, 's')
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(sock, r))
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = net.connect(sock)
  const serverSide = await accepted
  // Connected sockets outlive their path: the folder goes now, whether or not a caller cleans up.
  server.close()
  fs.rmSync(dir, { recursive: true, force: true })
  return [serverSide, client, () => (client.destroy(), serverSide.destroy())]
}
