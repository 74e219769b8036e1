/** Where the checkout, its compiled CLI and its guest kernel are (no side effects: safe for any suite to import). */
import path from 'node:path'
import { listCachedKernels } from '../../src/kernel/cache.js'

export const repoRoot = path.resolve(import.meta.dirname, '..', '..')
export const cliPath = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js')

/** The guest kernel the tests use: the one ktstr resolves (KTSTR_KERNEL, else the newest cached build). */
export const testKernel: string | undefined = process.env.KTSTR_KERNEL || listCachedKernels()[0]?.dir
