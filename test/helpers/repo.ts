/** Where the checkout, its compiled CLI and its guest kernel are (no side effects: safe for any suite to import). */
import fs from 'node:fs'
import path from 'node:path'

export const repoRoot = path.resolve(import.meta.dirname, '..', '..')
export const cliPath = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js')

/** The project's shared prebuilt kernel beside the checkout, if there is one. */
const sharedKernel = path.resolve(repoRoot, '..', 'shared', 'guest')

/** The guest kernel the tests use: KTSTR_KERNEL, else ../shared/guest when present. */
export const testKernel: string | undefined =
  process.env.KTSTR_KERNEL || (fs.existsSync(path.join(sharedKernel, 'bzImage')) ? sharedKernel : undefined)
