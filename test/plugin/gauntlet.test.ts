import { ktstrGauntlet } from 'ktstr/plugin'
import { describe, expect, it } from 'vitest'

describe('ktstrGauntlet', () => {
  it('makes one ktstr project per preset, named after it', () => {
    const projects = ktstrGauntlet({
      include: ['**/*.sched.test.ts'],
      presets: ['tiny-1llc', 'smt-2llc'],
      options: { scheduler: 'scx_simple' },
      capacity: { cpus: 64, memoryMib: 65536 },
    })
    expect(projects.map((p) => [p.test.name, p.test.include, p.test.pool.name])).toEqual([
      ['sched:tiny-1llc', ['**/*.sched.test.ts'], 'ktstr'],
      ['sched:smt-2llc', ['**/*.sched.test.ts'], 'ktstr'],
    ])
  })

  it('covers all 24 presets by default and drops those above the host, with a note naming them', () => {
    const notes: string[] = []
    const projects = ktstrGauntlet({ include: ['x'], capacity: { cpus: 16, memoryMib: 8192 }, note: (m) => notes.push(m) })
    const kept = projects.map((p) => p.test.name)
    expect(kept).toContain('sched:tiny-1llc')
    expect(kept).toContain('sched:smt-2llc')
    expect(kept).not.toContain('sched:medium-4llc')
    expect(notes).toHaveLength(1)
    expect(notes[0]).toMatch(/^ktstr gauntlet: left out \d+ preset\(s\) above this host's capacity \(16 vCPUs, 8192 MiB\): .*medium-4llc \(32 CPUs, 2048 MiB\)/)
    const leftOut = Number(/left out (\d+)/.exec(notes[0]!)![1])
    expect(kept.length + leftOut).toBe(24)
  })

  it('refuses an unknown preset with the list of known ones', () => {
    expect(() => ktstrGauntlet({ include: ['x'], presets: ['huge-9000'] })).toThrow(/unknown gauntlet preset "huge-9000"; known: tiny-1llc, tiny-2llc/)
  })
})
