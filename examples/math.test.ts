// An ordinary unit test: runs in Vitest's normal pool, next to the sched project.
import { expect, test } from 'vitest'

test('cpulists parse', () => {
  const parse = (s: string) =>
    s.split(',').flatMap((r) => {
      const [a, b] = r.split('-').map(Number)
      return Array.from({ length: (b ?? a!) - a! + 1 }, (_, i) => a! + i)
    })
  expect(parse('0-2,5')).toEqual([0, 1, 2, 5])
})
