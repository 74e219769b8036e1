/** The environment a run's command or Vitest worker gets: a base, then what the host asked for. */
const BASE_PATH = '/ktstr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export function runEnv(env: Record<string, string>): Record<string, string> {
  return { PATH: BASE_PATH, HOME: '/root', TERM: 'dumb', ...env }
}
