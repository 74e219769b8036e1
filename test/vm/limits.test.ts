/**
 * Timeout and memory ranges: the same limits and words whichever source the value comes from —
 * a CLI flag, a plugin option, a file's docblock, or a VmRequest given to bootGuest directly.
 */
import { describe, expect, it } from 'vitest'
import { specFromOptions } from '../../plugin/spec.js'
import { vmRequestFrom } from '../../src/cli/vm-options.js'
import { KtstrError } from '../../src/util/errors.js'
import { bootGuest } from '../../src/vm/boot.js'
import { MAX_TIMEOUT_S, MIN_MEMORY_MIB, maxMemoryMib } from '../../src/vm/defaults.js'
import { parseDocblock } from '../../src/vm/spec/docblock.js'

const MEMORY_WHY = `expected a whole number of MiB from ${MIN_MEMORY_MIB} to ${maxMemoryMib()} (this host's memory)`
const TIMEOUT_WHY = `expected a number of seconds above 0 and at most ${MAX_TIMEOUT_S} (about 24 days, the limit of Node's timers)`

/** The one-line KtstrError a source gives for `value`. */
async function errorOf(f: () => unknown): Promise<string> {
  try {
    await f()
  } catch (e) {
    expect(e).toBeInstanceOf(KtstrError)
    const msg = (e as Error).message
    expect(msg.split('\n')).toHaveLength(1)
    return msg
  }
  throw new Error('accepted')
}

const sources = {
  cli: (key: 'memory' | 'timeout', v: string) => vmRequestFrom({ [key]: v }, { kind: 'exec', argv: ['true'], tty: false }),
  docblock: (key: 'memory' | 'timeout', v: string) => parseDocblock(`/** @ktstr ${key}=${v} */\nexport {}\n`, '/p'),
  plugin: (key: 'memory' | 'timeout', v: string) => specFromOptions({ [key]: Number(v) }),
  api: (key: 'memory' | 'timeout', v: string) =>
    bootGuest({ mode: { kind: 'exec', argv: ['true'], tty: false }, ...(key === 'memory' ? { memoryMib: Number(v) } : { timeoutS: Number(v) }) }),
}
const where = {
  cli: (key: string, v: string) => `bad --${key}="${v}"`,
  docblock: (key: string, v: string) => `bad @ktstr ${key}="${v}"`,
  plugin: (key: string, v: string) => `bad ktstr() option ${key}=${v}`,
  api: (key: string, v: string) => `bad ${key === 'memory' ? 'memoryMib' : 'timeoutS'}=${v}`,
}

describe.each(Object.keys(sources) as (keyof typeof sources)[])('limits from the %s', (source) => {
  const tooMuch = String(maxMemoryMib() + 1)
  it.each([String(MIN_MEMORY_MIB - 1), tooMuch, '0'])('memory %s names the range and the host memory', async (v) => {
    expect(await errorOf(() => sources[source]('memory', v))).toBe(`${where[source]('memory', v)}: ${MEMORY_WHY}`)
  })

  it.each([String(MAX_TIMEOUT_S + 1), '3000000', '0'])('timeout %s names the limit', async (v) => {
    expect(await errorOf(() => sources[source]('timeout', v))).toBe(`${where[source]('timeout', v)}: ${TIMEOUT_WHY}`)
  })
})

describe('limits of text values (CLI and docblock)', () => {
  it.each(['99999999999999999999', '1G', '512.5', '-512', ''])('memory "%s" is refused with the range', async (v) => {
    expect(await errorOf(() => sources.cli('memory', v))).toBe(`bad --memory="${v}": ${MEMORY_WHY}`)
    if (v !== '') expect(await errorOf(() => sources.docblock('memory', v))).toBe(`bad @ktstr memory="${v}": ${MEMORY_WHY}`)
  })

  it.each(['1e3', '60s', '-5', 'Infinity'])('timeout "%s" is refused with the limit', async (v) => {
    expect(await errorOf(() => sources.cli('timeout', v))).toBe(`bad --timeout="${v}": ${TIMEOUT_WHY}`)
    expect(await errorOf(() => sources.docblock('timeout', v))).toBe(`bad @ktstr timeout="${v}": ${TIMEOUT_WHY}`)
  })

  it('accepts the edges of both ranges', () => {
    const edges = { memory: String(maxMemoryMib()), timeout: String(MAX_TIMEOUT_S) }
    expect(vmRequestFrom(edges, { kind: 'exec', argv: ['true'], tty: false })).toMatchObject({ memoryMib: maxMemoryMib(), timeoutS: MAX_TIMEOUT_S })
    expect(parseDocblock(`/** @ktstr memory=${MIN_MEMORY_MIB} timeout=0.5 */\n`, '/p')).toEqual({ memoryMib: MIN_MEMORY_MIB, timeoutS: 0.5 })
    expect(specFromOptions({ memory: MIN_MEMORY_MIB, timeout: MAX_TIMEOUT_S })).toEqual({ memoryMib: MIN_MEMORY_MIB, timeoutS: MAX_TIMEOUT_S })
  })
})
