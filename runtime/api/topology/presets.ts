// The presets are shared with the host (the gauntlet builds Vitest projects from them), so they
// live with the protocol module; the test API re-exports them.
export * from '../../protocol/presets.js'
