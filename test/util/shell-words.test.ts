import { describe, expect, it } from 'vitest'
import { shellWords } from '../../src/util/shell-words.js'

describe('shellWords', () => {
  it.each([
    ['-v', ['-v']],
    ['  -s  5000 -v ', ['-s', '5000', '-v']],
    [`--name 'a b' "c \\"d\\"" e\\ f`, ['--name', 'a b', 'c "d"', 'e f']],
    [`''`, ['']],
    ['', []],
  ])('%j', (input, words) => {
    expect(shellWords(input)).toEqual(words)
  })

  it('rejects unterminated quotes', () => {
    expect(() => shellWords(`-x 'oops`)).toThrow(/unterminated ' quote/)
    expect(() => shellWords(`-x "oops`)).toThrow(/unterminated " quote/)
  })
})
