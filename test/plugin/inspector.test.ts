/**
 * `vitest --inspect-brk` with the ktstr pool and a taken inspector port: refused before anything
 * boots, in one line naming the fix (fake guests; the real guest's debugger is inspector-guest.test.ts).
 */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { built, runFixture } from './pool-run.js'

const HOST = '127.0.0.1'

describe.skipIf(!built)('inspector port taken', () => {
  it('fails the file with one line naming the fix, before booting a guest', async () => {
    const holder = net.createServer()
    await new Promise<void>((r) => holder.listen(0, HOST, r))
    const { port } = holder.address() as net.AddressInfo
    try {
      const r = await runFixture(['basic.sched.ts'], { inspectBrk: `${HOST}:${port}`, fileParallelism: false })
      const line = `inspector port ${HOST}:${port} is in use; pass --inspect-brk=<port> or free it`
      expect(r.json.testResults[0]!.message).toBe(line)
      expect(r.output).toContain(`KtstrError: ${line}`)
      expect(r.guests.requests).toEqual([])
    } finally {
      holder.close()
    }
  })
})
