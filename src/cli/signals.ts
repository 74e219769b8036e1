/**
 * SIGINT, SIGTERM and SIGHUP for `exec` and `shell`, from before the image build to the end. While
 * the guest's command runs, the first Ctrl-C goes to it (so it can clean up and exit); otherwise —
 * a second Ctrl-C, SIGTERM, SIGHUP, or any of them during the image build, the boot or the power-off
 * — ktstr exits at once with 128 + the signal's number, and its exit hooks kill the VM and remove
 * its run folder.
 */
import { constants } from 'node:os'
import type { GuestSession } from '../vm/session.js'

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

export interface SignalHandling {
  /** The guest is up: Ctrl-C may now go to its command. */
  attach(session: GuestSession): void
  remove(): void
}

export function handleSignals(): SignalHandling {
  let session: GuestSession | undefined
  let commandRunning = false
  let forwarded = false
  const onSignal = (sig: NodeJS.Signals) => {
    if (sig === 'SIGINT' && session && commandRunning && !forwarded) {
      forwarded = true
      session.channel.sendControl({ kind: 'signal', signal: 'SIGINT' })
      return
    }
    session?.kill()
    process.exit(128 + constants.signals[sig])
  }
  for (const s of SIGNALS) process.on(s, onSignal)
  return {
    attach(s) {
      session = s
      s.channel.on('control', (msg) => {
        if (msg.kind === 'phase' && msg.phase === 'command-started') commandRunning = true
        else if (msg.kind === 'exit') commandRunning = false
      })
    },
    remove() {
      for (const s of SIGNALS) process.off(s, onSignal)
    },
  }
}
