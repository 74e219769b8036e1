import { KtstrError } from './errors.js'

/**
 * Split a string into words the way a POSIX shell would for simple cases: whitespace separates,
 * single quotes are literal, double quotes allow \" and \\, a backslash escapes one character.
 * No expansion of any kind. Used for `--sched-args` and the docblock's `sched-args=`.
 */
export function shellWords(text: string): string[] {
  const words: string[] = []
  let cur = ''
  let inWord = false
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === "'") {
      const end = text.indexOf("'", i + 1)
      if (end < 0) throw new KtstrError(`unterminated ' quote in ${JSON.stringify(text)}`)
      cur += text.slice(i + 1, end)
      inWord = true
      i = end + 1
    } else if (c === '"') {
      i++
      inWord = true
      for (;;) {
        if (i >= text.length) throw new KtstrError(`unterminated " quote in ${JSON.stringify(text)}`)
        const d = text[i]!
        if (d === '"') break
        if (d === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) {
          cur += text[i + 1]
          i += 2
        } else {
          cur += d
          i++
        }
      }
      i++
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[i + 1]
      inWord = true
      i += 2
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur)
      cur = ''
      inWord = false
      i++
    } else {
      cur += c
      inWord = true
      i++
    }
  }
  if (inWord) words.push(cur)
  return words
}
