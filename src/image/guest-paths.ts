/**
 * What the kernel starts, at fixed guest paths: links in the base image to the host's node and
 * ktstr's init script. The kernel command line then holds no host path, which could have spaces,
 * commas, quotes or `=` (the kernel splits at spaces and cannot escape a `"`), or be too long
 * for its 2 KiB limit.
 */
export const GUEST_NODE = '/ktstr/node'
export const GUEST_INIT = '/ktstr/init.js'
/** The init script inside the ktstr package: main.js and its modules in one file (runtime/init/build-init.ts). */
export const INIT_SCRIPT_IN_PACKAGE = 'dist/runtime/init/init.js'
