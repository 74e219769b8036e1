/**
 * One plain line per test and per file as each ends (`test:kvm: passed test/kvm/x.test.ts > name`,
 * `test:kvm: file passed test/kvm/x.test.ts`). Nested, test/kvm/run.mjs reads them: output that stops
 * for longer than any test may take means the outer guest hung, and the files that passed are not
 * run again in the next outer boot.
 */
import path from 'node:path'
import type { Reporter, TestCase, TestModule } from 'vitest/node'

const rel = (m: TestModule) => path.relative(m.project.config.root, m.moduleId)

export default class ProgressReporter implements Reporter {
  onTestCaseResult(test: TestCase): void {
    const r = test.result()
    const ms = test.diagnostic()?.duration
    process.stdout.write(`test:kvm: ${r.state} ${rel(test.module)} > ${test.fullName}${ms === undefined ? '' : ` (${Math.round(ms)} ms)`}\n`)
  }

  onTestModuleEnd(m: TestModule): void {
    process.stdout.write(`test:kvm: file ${m.state()} ${rel(m)}\n`)
  }
}
