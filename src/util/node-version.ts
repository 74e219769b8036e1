/**
 * The oldest Node ktstr runs on: `zlib.crc32` (the channel's frame checksum) came in Node 20.15.
 * package.json's `engines` says the same; the `ktstr` command and `ktstr doctor` check it.
 */
export const MIN_NODE = '20.15.0'

/** One line naming the fix when `version` (e.g. process.versions.node) is older than MIN_NODE; undefined when it is not. */
export function nodeTooOld(version: string = process.versions.node): string | undefined {
  const have = version.split('.').map((n) => Number.parseInt(n, 10))
  const need = MIN_NODE.split('.').map(Number)
  for (let i = 0; i < need.length; i++) {
    const h = have[i] ?? 0
    if (h !== need[i]) return h > need[i]! ? undefined : `Node v${version} is too old: ktstr needs Node >= ${MIN_NODE}; install a newer Node (20 LTS or later)`
  }
  return undefined
}
