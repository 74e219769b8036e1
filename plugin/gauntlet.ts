/**
 * The gauntlet: the same sched test files once per topology preset, one Vitest project each
 * (`sched:smt-2llc`, …), so reporters and editor explorers show every topology as its own
 * project. Presets this host cannot run within its CPUs and memory are left out, with a note.
 *
 *   export default defineConfig({ test: { projects: [
 *     ...ktstrGauntlet({ include: ['**\/*.sched.test.ts'], presets: ['tiny-1llc', 'smt-2llc'] }),
 *   ] } })
 */
import os from 'node:os'
import { PRESETS, type TopologyPreset } from '../runtime/protocol/presets.js'
import { KtstrError } from '../src/util/errors.js'
import { ktstrPool } from './pool.js'
import type { KtstrOptions } from './spec.js'

export interface GauntletOptions {
  /** Test files, as Vitest's `include`. */
  include: string[]
  exclude?: string[]
  /** Preset names; default: all 24. */
  presets?: string[]
  /** Options for every guest (scheduler, kernel, …); topology and memory come from the preset. */
  options?: Omit<KtstrOptions, 'topology' | 'memory'>
  /** Project name prefix (default `sched`). */
  name?: string
  /** Largest guest this host takes. Default: 4 vCPUs per host CPU (TCG) and the free memory. */
  capacity?: { cpus: number; memoryMib: number }
  /** Where the note about dropped presets goes (default: console.warn). */
  note?: (message: string) => void
}

export interface GauntletProject {
  test: { name: string; include: string[]; exclude?: string[]; pool: ReturnType<typeof ktstrPool> }
}

const cpusOf = (p: TopologyPreset) => p.topology.llcs * p.topology.coresPerLlc * p.topology.threadsPerCore
const topologyOf = (p: TopologyPreset) => {
  const t = p.topology
  return `${t.numaNodes}n${t.llcs}l${t.coresPerLlc}c${t.threadsPerCore}t`
}

export function ktstrGauntlet(opts: GauntletOptions): GauntletProject[] {
  const wanted = opts.presets ?? PRESETS.map((p) => p.name)
  const presets = wanted.map((name) => {
    const p = PRESETS.find((x) => x.name === name)
    if (!p) throw new KtstrError(`unknown gauntlet preset "${name}"; known: ${PRESETS.map((x) => x.name).join(', ')}`)
    return p
  })
  const cap = opts.capacity ?? { cpus: 4 * os.availableParallelism(), memoryMib: Math.floor(os.freemem() / 1048576) }
  const fits = (p: TopologyPreset) => cpusOf(p) <= cap.cpus && p.memoryMib <= cap.memoryMib
  const dropped = presets.filter((p) => !fits(p))
  if (dropped.length) {
    ;(opts.note ?? console.warn)(
      `ktstr gauntlet: left out ${dropped.length} preset(s) above this host's capacity (${cap.cpus} vCPUs, ${cap.memoryMib} MiB): ` +
        dropped.map((p) => `${p.name} (${cpusOf(p)} CPUs, ${p.memoryMib} MiB)`).join(', '),
    )
  }
  const prefix = opts.name ?? 'sched'
  return presets.filter(fits).map((p) => ({
    test: {
      name: `${prefix}:${p.name}`,
      include: opts.include,
      ...(opts.exclude ? { exclude: opts.exclude } : {}),
      // The preset is the point of the project: it wins over a file's own topology= and memory=.
      pool: ktstrPool({ ...opts.options, topology: topologyOf(p), memory: p.memoryMib, fixedTopology: true }),
    },
  }))
}
