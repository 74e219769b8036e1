import pc from 'picocolors'

export type BuildPhase = 'prepare' | 'toolchain' | 'pahole' | 'source' | 'configure' | 'bzImage' | 'schedulers' | 'install'

export type BuildEvent =
  | { type: 'phase-start'; phase: BuildPhase }
  | { type: 'phase-end'; phase: BuildPhase; seconds: number }
  | { type: 'output'; line: string }
  | { type: 'note'; message: string }

/**
 * The target of a kbuild quiet-mode line (`  CC      kernel/sched/core.o` → `CC kernel/sched/core.o`),
 * also the tools/ build's `  CLANG-BPF ...`, `  GEN-SKEL ...`; undefined for other output.
 */
export function makeTarget(line: string): string | undefined {
  const m = /^ {2}([A-Z][A-Z0-9_-]*(?:\s\[[^\]]*\])?)\s+(\S.*)$/.exec(line.trimEnd())
  return m ? `${m[1]} ${m[2]}` : undefined
}

export function formatElapsed(seconds: number): string {
  const s = Math.floor(seconds)
  const h = Math.floor(s / 3600)
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, '0')
  const ss = String(s % 60).padStart(2, '0')
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

export interface ProgressDisplay {
  onProgress(e: BuildEvent): void
  /** Clear the live line (call before printing anything else, and at the end). */
  stop(): void
}

/**
 * One live line on a TTY (phase, elapsed time, last make target), redrawn once a second;
 * plain lines otherwise (phase start/end and a heartbeat every minute).
 */
export function createProgressDisplay(stream: NodeJS.WriteStream = process.stderr): ProgressDisplay {
  const tty = Boolean(stream.isTTY)
  let phase: BuildPhase | undefined
  let phaseStart = 0
  let target = ''
  let timer: NodeJS.Timeout | undefined
  let lastBeat = 0

  const clear = () => tty && stream.write('\r\x1b[K')
  const draw = () => {
    if (!phase) return
    const elapsed = formatElapsed((Date.now() - phaseStart) / 1000)
    if (tty) {
      const width = Math.max(20, (stream.columns || 80) - 1)
      const room = width - phase.length - elapsed.length - 3
      const shown = target.length > room ? target.slice(0, Math.max(0, room)) : target
      stream.write(`\r\x1b[K${pc.cyan(phase)} ${pc.dim(elapsed)}${shown ? `  ${shown}` : ''}`)
    } else if (Date.now() - lastBeat >= 60_000) {
      lastBeat = Date.now()
      stream.write(`ktstr: ${phase} ${elapsed}${target ? `  ${target}` : ''}\n`)
    }
  }

  return {
    onProgress(e) {
      switch (e.type) {
        case 'phase-start':
          phase = e.phase
          phaseStart = lastBeat = Date.now()
          target = ''
          if (!tty) stream.write(`ktstr: ${e.phase} ...\n`)
          timer ??= setInterval(draw, 1000)
          timer.unref()
          draw()
          break
        case 'phase-end':
          clear()
          stream.write(`${tty ? pc.green('✓') : 'ktstr:'} ${e.phase} ${tty ? pc.dim(formatElapsed(e.seconds)) : `done in ${formatElapsed(e.seconds)}`}\n`)
          phase = undefined
          break
        case 'output': {
          const t = makeTarget(e.line)
          if (t) target = t
          break
        }
        case 'note':
          clear()
          stream.write(`ktstr: ${e.message}\n`)
          draw()
          break
      }
    },
    stop() {
      if (timer) clearInterval(timer)
      timer = undefined
      clear()
    },
  }
}
