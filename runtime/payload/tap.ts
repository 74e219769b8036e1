/**
 * TAP 13/14 and the kernel's KTAP: the `ok N name` / `not ok N name` lines of a test program,
 * with `# SKIP` / `# TODO` directives and the diagnostic lines that follow a result.
 * Subtests (indented, KTAP) get their parents' names as a prefix: `parent > child`.
 */
export interface TapCase {
  number: number
  name: string
  ok: boolean
  directive?: 'skip' | 'todo'
  reason?: string
  /** `#` comment lines and YAML lines printed after this result, for a failure message. */
  diagnostics: string[]
}

const RESULT = /^(\s*)(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*?)\s*(?:#\s*(SKIP|TODO)\b\s*(.*))?$/i
const SUBTEST_HEADER = /^(\s*)#\s*Subtest:\s*(.*)$/i

export function parseTap(text: string): TapCase[] {
  const out: TapCase[] = []
  // Names of open subtests by indentation, from KTAP "# Subtest: name" headers.
  const parents: { indent: number; name: string }[] = []
  let last: TapCase | undefined
  for (const raw of text.split(/\r?\n/)) {
    const header = SUBTEST_HEADER.exec(raw)
    if (header) {
      const indent = header[1]!.length
      while (parents.length && parents.at(-1)!.indent >= indent) parents.pop()
      parents.push({ indent, name: header[2]!.trim() })
      continue
    }
    const m = RESULT.exec(raw)
    if (!m) {
      if (last && /^\s*(#|---|\.\.\.|[a-z_]+:)/i.test(raw)) last.diagnostics.push(raw.trim())
      continue
    }
    const indent = m[1]!.length
    // Results of a subtest share its header's indent; its summary line, one level out, closes it.
    while (parents.length && parents.at(-1)!.indent > indent) parents.pop()
    const name = m[4]!.trim() || `test ${m[3] ?? out.length + 1}`
    const prefix = parents.map((p) => p.name)
    last = {
      number: Number(m[3] ?? out.length + 1),
      name: [...prefix, name].join(' > '),
      ok: m[2]!.toLowerCase() === 'ok',
      diagnostics: [],
      ...(m[5] ? { directive: m[5].toLowerCase() as 'skip' | 'todo', reason: m[6]?.trim() ?? '' } : {}),
    }
    out.push(last)
  }
  return out
}
