/** Where the checkout and its compiled CLI are (no side effects: safe for any suite to import). */
import path from 'node:path'

export const repoRoot = path.resolve(import.meta.dirname, '..', '..')
export const cliPath = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js')
