import type { TypeObject } from 'koffi'
import { compileAndRun, factsProgram } from '../cprobe.js'
import { ABI_CONSTANTS } from './abi.js'
import { ABI_STRUCTS } from './structs.js'

/** One ABI number as koffi sees it, with the C expression that must give the same value. */
export interface AbiFact {
  key: string
  cExpr: string
  value: number
}

/**
 * Every checkable number of the koffi declarations: sizeof/alignof of each struct in ABI_STRUCTS;
 * offset and size of every nested member (alignment too for aggregates, element sizes for arrays);
 * the value of every constant in ABI_CONSTANTS. Adding a struct or constant extends the list.
 */
export function abiFacts(): AbiFact[] {
  const facts: AbiFact[] = []
  for (const [tag, type] of Object.entries(ABI_STRUCTS)) {
    const s = `struct ${tag}`
    facts.push({ key: `sizeof(${s})`, cExpr: `sizeof(${s})`, value: type.size })
    facts.push({ key: `alignof(${s})`, cExpr: `_Alignof(${s})`, value: type.alignment })
    memberFacts(s, type, '', 0, facts)
  }
  for (const [prefix, table] of ABI_CONSTANTS) {
    for (const [name, value] of Object.entries(table)) {
      facts.push({ key: prefix + name, cExpr: prefix + name, value })
    }
  }
  return facts
}

// `_anon*` members are C anonymous unions: their members are named directly in C.
function memberFacts(s: string, type: TypeObject, prefix: string, base: number, out: AbiFact[]): void {
  for (const m of Object.values(type.members ?? {})) {
    const offset = base + m.offset
    if (m.name.startsWith('_anon')) {
      memberFacts(s, m.type, prefix, offset, out)
      continue
    }
    let path = prefix + m.name
    const lvalue = (p: string) => `((${s} *)0)->${p}`
    out.push({ key: `offsetof(${s}, ${path})`, cExpr: `offsetof(${s}, ${path})`, value: offset })
    out.push({ key: `sizeof(${s}.${path})`, cExpr: `sizeof(${lvalue(path)})`, value: m.type.size })
    if (m.type.members || m.type.primitive === 'Array') {
      out.push({ key: `alignof(${s}.${path})`, cExpr: `__alignof__(${lvalue(path)})`, value: m.type.alignment })
    }
    let t = m.type
    while (t.primitive === 'Array' && t.ref) {
      path += '[0]'
      t = t.ref
      out.push({ key: `sizeof(${s}.${path})`, cExpr: `sizeof(${lvalue(path)})`, value: t.size })
    }
    if (t.members) memberFacts(s, t, `${path}.`, offset, out)
  }
}

/** The C program that prints the compiler's value for every fact, as JSON. */
export function abiCProgram(facts: readonly AbiFact[] = abiFacts()): string {
  return factsProgram(['linux/kvm.h'], facts)
}

/** Builds and runs abiCProgram with gcc against the installed linux/kvm.h; returns its JSON. */
export function compilerFacts(facts: readonly AbiFact[] = abiFacts()): Record<string, number> {
  return JSON.parse(compileAndRun(abiCProgram(facts))) as Record<string, number>
}

/** Compares koffi's facts with the compiler's (or the golden file's), both ways. */
export function compareFacts(facts: readonly AbiFact[], truth: Readonly<Record<string, number>>): { compared: number; mismatches: string[] } {
  const mismatches: string[] = []
  let compared = 0
  const seen = new Set<string>()
  for (const f of facts) {
    seen.add(f.key)
    if (!(f.key in truth)) {
      mismatches.push(`${f.key}: koffi ${f.value}, missing in the C facts`)
      continue
    }
    compared++
    if (truth[f.key] !== f.value) mismatches.push(`${f.key}: koffi ${f.value}, C ${truth[f.key]}`)
  }
  for (const key of Object.keys(truth)) {
    if (!seen.has(key)) mismatches.push(`${key}: C ${truth[key]}, not declared on the koffi side`)
  }
  return { compared, mismatches }
}
