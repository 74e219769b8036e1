import type { TypeObject } from 'koffi'

/** The member at a dotted path through nested structs and unions, with its offset from the start. */
export function memberAt(type: TypeObject, path: string): { offset: number; type: TypeObject } {
  let offset = 0
  let t = type
  for (const name of path.split('.')) {
    const m = t.members?.[name]
    if (!m) throw new Error(`${t.name} has no member '${name}' (path '${path}')`)
    offset += m.offset
    t = m.type
  }
  return { offset, type: t }
}

/** Byte offset of a nested member, e.g. offsetOf(kvm_run, '_anon_exit.io.port'). */
export const offsetOf = (type: TypeObject, path: string): number => memberAt(type, path).offset
