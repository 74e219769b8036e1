import { describe, expect, it } from 'vitest'
import { numericLeaves } from '../../runtime/payload/payload.js'
import { parseTap } from '../../runtime/payload/tap.js'

describe('parseTap', () => {
  it('reads TAP results, directives and diagnostics', () => {
    const cases = parseTap(
      ['TAP version 13', '1..4', 'ok 1 - loads', 'not ok 2 - unloads cleanly', '# got EBUSY', 'ok 3 skipped one # SKIP no BTF', 'ok 4 # TODO later', 'trailing noise'].join('\n'),
    )
    expect(cases.map((c) => [c.number, c.name, c.ok, c.directive ?? null])).toEqual([
      [1, 'loads', true, null],
      [2, 'unloads cleanly', false, null],
      [3, 'skipped one', true, 'skip'],
      [4, 'test 4', true, 'todo'],
    ])
    expect(cases[1]!.diagnostics).toEqual(['# got EBUSY'])
    expect(cases[2]!.reason).toBe('no BTF')
  })

  it('names KTAP subtests after their parent', () => {
    const ktap = ['KTAP version 1', '1..1', '    KTAP version 1', '    # Subtest: sched_ext', '    ok 1 create_dsq', '    not ok 2 reload_loop', 'not ok 1 sched_ext'].join('\n')
    expect(parseTap(ktap).map((c) => [c.name, c.ok])).toEqual([
      ['sched_ext > create_dsq', true],
      ['sched_ext > reload_loop', false],
      ['sched_ext', false],
    ])
  })
})

describe('numericLeaves', () => {
  it('flattens numbers by dotted path and ignores the rest', () => {
    expect(numericLeaves({ a: { b: 1, s: 'x' }, c: [2, { d: 3 }], e: null, f: Infinity })).toEqual({ 'a.b': 1, 'c.0': 2, 'c.1.d': 3 })
  })
})
