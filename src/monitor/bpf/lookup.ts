/** A map by name, with one line listing the guest's maps when there is none. */
import { BpfMapError } from './errors.js'
import type { BpfMapInfo } from './maps.js'

/** `name` as the kernel keeps it (BPF_OBJ_NAME_LEN: 15 characters), or `#<id>`. Several maps of one name: the lowest id unless `owner` (a pid) says whose. */
export function findMap(maps: readonly BpfMapInfo[], name: string, owner?: number): BpfMapInfo {
  const byId = /^#(\d+)$/.exec(name)
  const hits = maps.filter((m) => (byId ? m.id === Number(byId[1]) : m.name === name || (name.length > 15 && m.name === name.slice(0, 15))))
  const mine = owner === undefined ? hits : hits.filter((m) => m.owner.pid === owner)
  if (mine[0]) return mine[0]
  const names = [...new Set(maps.map((m) => m.name))]
  const list = names.length ? `the guest's maps are ${names.join(', ')}` : 'the guest has no BPF maps held by a process (is the scheduler loaded?)'
  throw new BpfMapError(`no BPF map named '${name}'${owner !== undefined ? ` held by pid ${owner}` : ''}: ${list}`)
}
