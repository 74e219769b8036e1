/**
 * Turn a TAP/KTAP payload into Vitest tests: one test per result line, so each inner test shows in
 * reporters and editor explorers. Call it at the top level of a sched test file:
 *
 *   await tapTests('/usr/lib/x/selftest', { args: ['-v'] })
 */
import { type PayloadOptions, payload } from './payload.js'

export async function tapTests(program: string, opts: Omit<PayloadOptions, 'output'> = {}): Promise<void> {
  const { describe, test } = await import('vitest')
  const r = await payload(program, { ...opts, output: 'tap' })
  const cases = r.tap ?? []
  describe(program.split('/').pop()!, () => {
    if (cases.length === 0) {
      test('produced TAP results', () => {
        throw new Error(`${program} printed no TAP results (exit ${r.exitCode}); stderr: ${r.stderr.slice(-500)}`)
      })
    }
    for (const c of cases) {
      if (c.directive === 'skip') test.skip(c.name, () => {})
      else if (c.directive === 'todo') test.todo(c.name)
      else
        test(c.name, () => {
          if (!c.ok) throw new Error([`not ok ${c.number} ${c.name}`, ...c.diagnostics].join('\n'))
        })
    }
  })
}
