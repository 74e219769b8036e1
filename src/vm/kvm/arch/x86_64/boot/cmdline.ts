/**
 * Kernel command-line editing. Words after a lone `--` are init's arguments, not kernel
 * parameters (Documentation/admin-guide/kernel-parameters.rst), so the VMM's own parameters go
 * before it.
 */
export function addKernelParams(cmdline: string, params: readonly string[]): string {
  const words = cmdline.split(/\s+/).filter(Boolean)
  const sep = words.indexOf('--')
  const at = sep < 0 ? words.length : sep
  return [...words.slice(0, at), ...params, ...words.slice(at)].join(' ')
}
