// Regenerates abi.golden.json from gcc and the installed linux/kvm.h:
//   npm run build && node dist/native-shims/kvm/write-golden.js
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { abiFacts, compareFacts, compilerFacts } from './abi-check.js'

/** native-shims/kvm/abi.golden.json in the source tree, from this file in src or in dist/. */
function goldenPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir)
    if (up === dir) throw new Error('package.json not found above write-golden')
    dir = up
  }
  return path.join(dir, 'native-shims', 'kvm', 'abi.golden.json')
}

const facts = abiFacts()
const truth = compilerFacts(facts)
const out = goldenPath()
fs.writeFileSync(out, `${JSON.stringify(truth, null, 2)}\n`)
const { compared, mismatches } = compareFacts(facts, truth)
console.log(`wrote ${Object.keys(truth).length} facts to ${out}; koffi agrees on ${compared - mismatches.length}/${compared}`)
for (const m of mismatches) console.log(`  mismatch ${m}`)
process.exitCode = mismatches.length ? 1 : 0
