import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConsoleLog } from '../../src/vm/console.js'

describe('ConsoleLog', () => {
  it('keeps the last lines across chunk boundaries and strips terminal escapes', () => {
    const c = new ConsoleLog(3)
    c.push(Buffer.from('one\r\ntw'))
    c.push(Buffer.from('o\n\x1b[31mthree\x1b[0m\nfour\npart'))
    expect(c.tail(10)).toEqual(['two', 'three', 'four', 'part'])
    expect(c.firstByteAt).toBeTypeOf('number')
  })

  it('notices a kernel panic and the sched_ext exit reason', () => {
    const c = new ConsoleLog()
    c.push(Buffer.from('[    1.0] sched_ext: BPF scheduler "simple" disabled (runnable task stall)\n'))
    c.push(Buffer.from('[    2.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n'))
    expect(c.schedExtExit).toEqual({ scheduler: 'simple', reason: 'runnable task stall' })
    expect(c.panic).toBe('Attempted to kill init! exitcode=0x00000100')
  })

  it('mirrors everything to a log file', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-con-')), 'console.log')
    const c = new ConsoleLog(1, file)
    c.push(Buffer.from('a\nb\nc'))
    c.close()
    expect(fs.readFileSync(file, 'utf8')).toBe('a\nb\nc')
    expect(c.tail()).toEqual(['c'])
  })
})
