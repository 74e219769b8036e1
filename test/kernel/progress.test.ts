import { describe, expect, it } from 'vitest'
import { createProgressDisplay } from '../../src/kernel/progress.js'

function fakeStream(isTTY: boolean) {
  const chunks: string[] = []
  const stream = { isTTY, columns: 60, write: (s: string) => (chunks.push(s), true) } as unknown as NodeJS.WriteStream
  return { stream, chunks }
}

describe('progress display', () => {
  it('writes plain lines when not a TTY', () => {
    const { stream, chunks } = fakeStream(false)
    const d = createProgressDisplay(stream)
    d.onProgress({ type: 'phase-start', phase: 'bzImage' })
    d.onProgress({ type: 'output', line: '  CC      kernel/sched/core.o' })
    d.onProgress({ type: 'note', message: 'hello' })
    d.onProgress({ type: 'phase-end', phase: 'bzImage', seconds: 65 })
    d.stop()
    const text = chunks.join('')
    expect(text).toBe('ktstr: bzImage ...\nktstr: hello\nktstr: bzImage done in 1:05\n')
    expect(text).not.toContain('\x1b')
  })

  it('redraws one line on a TTY with phase, elapsed time and the last make target, cut to the width', () => {
    const { stream, chunks } = fakeStream(true)
    const d = createProgressDisplay(stream)
    d.onProgress({ type: 'phase-start', phase: 'bzImage' })
    d.onProgress({ type: 'output', line: `  CC      ${'x/'.repeat(60)}core.o` })
    d.onProgress({ type: 'note', message: 'n' }) // forces a redraw now
    d.stop()
    const redraw = chunks.filter((c) => c.startsWith('\r\x1b[K') && c.includes('CC')).at(-1)!
    expect(redraw).toContain('bzImage')
    expect(redraw).toContain('0:00')
    // eslint-disable-next-line no-control-regex
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the terminal sequences it strips
    const visible = redraw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace('\r', '')
    expect(visible.length).toBeLessThanOrEqual(59)
    expect(chunks.at(-1)).toBe('\r\x1b[K')
  })
})
