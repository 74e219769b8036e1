/**
 * The Vitest versions the pool accepts (plugin/vitest-version.ts), and that package.json's peer
 * range says the same. Vitest 4.0 and 5 were run by hand with a packed ktstr (see README, Versions).
 */
import fs from 'node:fs'
import path from 'node:path'
import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { version } from 'vitest/node'
import { assertSupportedVitest, SUPPORTED_VITEST } from '../../plugin/vitest-version.js'
import { KtstrError } from '../../src/util/errors.js'
import { repoRoot } from '../helpers/repo.js'

describe('supported Vitest versions', () => {
  it('accepts the Vitest this project runs and any 4.x from 4.1.0', () => {
    for (const v of [version, '4.1.0', '4.1.12', '4.2.0']) expect(() => assertSupportedVitest(v)).not.toThrow()
  })

  it('refuses Vitest 4.0 and 5 with one line naming the supported range and the fix', () => {
    for (const v of ['4.0.18', '5.0.0', '5.1.2', '3.2.4']) {
      let error: unknown
      try {
        assertSupportedVitest(v)
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(KtstrError)
      // Vitest prints a startup error with util.inspect: the user sees exactly this line.
      expect(inspect(error)).toBe(`KtstrError: ktstr supports Vitest >=4.1.0 <5, this project has Vitest ${v}: npm install -D vitest@4`)
    }
  })

  it('is the peer range package.json declares', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'))
    expect(pkg.peerDependencies.vitest).toBe(SUPPORTED_VITEST)
  })
})
