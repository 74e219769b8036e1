import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** Whether `gcc` runs here (needed to check declarations against the C headers). */
export function hasGcc(): boolean {
  return spawnSync('gcc', ['--version'], { stdio: 'ignore' }).status === 0
}

/** Compiles a C program with gcc (gnu11), runs it, and returns its stdout. */
export function compileAndRun(source: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-cprobe-'))
  try {
    const src = path.join(dir, 'probe.c')
    const exe = path.join(dir, 'probe')
    fs.writeFileSync(src, source)
    const cc = spawnSync('gcc', ['-std=gnu11', '-O0', '-w', '-o', exe, src], { encoding: 'utf8' })
    if (cc.status !== 0) throw new Error(`gcc failed (status ${cc.status}):\n${cc.stderr || cc.error}`)
    return execFileSync(exe, { encoding: 'utf8', maxBuffer: 64 << 20 })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** A C program printing one JSON object `{ key: (unsigned long long)(expr), … }`. */
export function factsProgram(includes: readonly string[], facts: ReadonlyArray<{ key: string; cExpr: string }>, defines: readonly string[] = []): string {
  const lines = facts.map((f, i) => `  printf("%s  %s: %llu", ${i === 0 ? '""' : '",\\n"'}, ${cString(JSON.stringify(f.key))}, (unsigned long long)(${f.cExpr}));`)
  return [
    ...defines.map((d) => `#define ${d}`),
    ...includes.map((h) => `#include <${h}>`),
    '#include <stdio.h>',
    '#include <stddef.h>',
    '',
    'int main(void) {',
    '  printf("{\\n");',
    ...lines,
    '  printf("\\n}\\n");',
    '  return 0;',
    '}',
    '',
  ].join('\n')
}

/** A C string literal for ASCII text. */
const cString = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
