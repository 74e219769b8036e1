#!/usr/bin/env node
/**
 * The `ktstr` executable: checks the Node version before loading the command, whose imports
 * (`crc32` from node:zlib) would fail on an older Node with a SyntaxError instead of a fix.
 */
import { nodeTooOld } from '../util/node-version.js'
import { EXIT_KTSTR_FAILED } from './exit-codes.js'

const tooOld = nodeTooOld()
if (tooOld) {
  process.stderr.write(`ktstr: ${tooOld}\n`)
  process.exitCode = EXIT_KTSTR_FAILED
} else {
  await import('./main.js')
}
