/**
 * What the guest has told Vitest about its test files so far (from the birpc calls it makes), so that
 * when the guest dies the pool can finish the story itself: the test that was running fails with the
 * cause, the rest are skipped, and the file fails — through the same RPC calls the guest would make.
 */
import path from 'node:path'
import type { RunnerTask, RunnerTaskEventPack, RunnerTaskResult, RunnerTaskResultPack, RunnerTestFile, TestError } from 'vitest'
import { generateFileHash } from 'vitest/node'

export interface HostCall {
  method: 'onQueued' | 'onCollected' | 'onTaskUpdate'
  args: unknown[]
}

export interface ProjectInfo {
  root: string
  /** `project.config.name` (file ids hash it). */
  name: string
  pool: string
}

type TaskState = RunnerTaskResult['state']
const DONE = new Set<string>(['test-finished', 'test-cancel', 'suite-finished', 'suite-failed-early', 'test-failed-early'])

export class RunTracker {
  private readonly files = new Map<string, RunnerTestFile>()
  private readonly collected = new Set<string>()
  private readonly prepared = new Set<string>()
  private readonly finished = new Set<string>()
  private readonly states = new Map<string, TaskState>()

  constructor(private readonly project: ProjectInfo) {}

  /** A birpc request the guest sent to the host. The guest is not trusted: odd shapes are ignored. */
  observe(method: unknown, args: unknown): void {
    if (!Array.isArray(args)) return
    if (method === 'onQueued') this.addFile(args[0], false)
    else if (method === 'onCollected') for (const f of list(args[0])) this.addFile(f, true)
    else if (method === 'onTaskUpdate') {
      for (const [id, result] of list(args[0]).filter(Array.isArray) as RunnerTaskResultPack[]) {
        if (typeof id === 'string' && typeof result?.state === 'string') this.states.set(id, result.state)
      }
      for (const [id, event] of list(args[1]).filter(Array.isArray) as RunnerTaskEventPack[]) {
        if (typeof id !== 'string' || typeof event !== 'string') continue
        if (event.endsWith('-prepare')) this.prepared.add(id)
        if (DONE.has(event)) this.finished.add(id)
      }
    }
  }

  /** Calls that report every unfinished file of `filepaths` as failed with `error`. */
  failureCalls(filepaths: string[], error: TestError): HostCall[] {
    const calls: HostCall[] = []
    // `note` is what Vitest itself puts on tests a cancelled run skipped; reporters show it.
    const skipped = { state: 'skip', note: `not run: ${error.message.split('\n')[0]}` } as RunnerTaskResult
    for (const filepath of filepaths) {
      let file = this.files.get(filepath)
      if (!file) {
        file = newFileTask(filepath, this.project)
        calls.push({ method: 'onQueued', args: [file] })
      }
      if (!this.collected.has(filepath)) {
        const result: RunnerTaskResult = { state: 'fail', errors: [error] }
        const failed = { ...file, result }
        failed.file = failed
        calls.push({ method: 'onCollected', args: [[failed]] })
        calls.push({ method: 'onTaskUpdate', args: [[[file.id, result, file.meta]], [[file.id, 'suite-failed-early', undefined]]] })
        continue
      }
      if (this.finished.has(file.id)) continue
      const packs: RunnerTaskResultPack[] = []
      const events: RunnerTaskEventPack[] = []
      const skipAll = (task: RunnerTask) => {
        packs.push([task.id, skipped, task.meta])
        if (task.type === 'suite') task.tasks.forEach(skipAll)
      }
      const visit = (task: RunnerTask): TaskState => {
        if (this.finished.has(task.id)) return this.states.get(task.id) ?? task.result?.state ?? 'pass'
        if (task.type === 'suite') {
          if (!this.prepared.has(task.id)) {
            skipAll(task)
            events.push([task.id, 'suite-finished', undefined])
            return 'skip'
          }
          const states = task.tasks.map(visit)
          const state: TaskState = states.includes('fail') ? 'fail' : states.includes('pass') ? 'pass' : 'skip'
          packs.push([task.id, { state }, task.meta])
          events.push([task.id, 'suite-finished', undefined])
          return state
        }
        const running = this.prepared.has(task.id)
        packs.push([task.id, running ? { state: 'fail', errors: [error] } : skipped, task.meta])
        events.push([task.id, 'test-finished', undefined])
        return running ? 'fail' : 'skip'
      }
      const started = this.prepared.has(file.id)
      if (started) file.tasks.forEach(visit)
      else file.tasks.forEach(skipAll)
      // The error shows once: on the test that was running, else on the file.
      const carried = packs.some(([, r]) => r?.errors?.includes(error))
      packs.push([file.id, carried ? { state: 'fail' } : { state: 'fail', errors: [error] }, file.meta])
      events.push([file.id, started ? 'suite-finished' : 'suite-failed-early', undefined])
      calls.push({ method: 'onTaskUpdate', args: [packs, events] })
    }
    return calls
  }

  /** Calls for files the run never reached because it was cancelled (as Vitest's own `cancelFiles`). */
  cancelCalls(filepaths: string[]): HostCall[] {
    return filepaths.filter((f) => !this.files.has(f)).map((f) => ({ method: 'onQueued', args: [newFileTask(f, this.project)] }))
  }

  private addFile(value: unknown, collected: boolean): void {
    if (!isTaskTree(value) || typeof (value as RunnerTestFile).filepath !== 'string') return
    const file = value as RunnerTestFile
    this.files.set(file.filepath, file)
    if (collected) this.collected.add(file.filepath)
  }
}

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])

/** A task with the fields failureCalls walks: ids, types, and suites' children, all the way down. */
function isTaskTree(v: unknown, seen = new Set<unknown>()): boolean {
  if (typeof v !== 'object' || v === null || seen.has(v)) return false
  seen.add(v)
  const t = v as Partial<RunnerTask>
  if (typeof t.id !== 'string') return false
  if (t.type === 'suite') return Array.isArray(t.tasks) && t.tasks.every((c) => isTaskTree(c, seen))
  return t.type === 'test'
}

/** A file task as @vitest/runner's createFileTask makes it (same id, so the host matches it up). */
function newFileTask(filepath: string, project: ProjectInfo): RunnerTestFile {
  const rel = path.relative(project.root, filepath)
  const file = {
    id: generateFileHash(rel, project.name),
    name: rel,
    fullName: rel,
    type: 'suite',
    mode: 'run',
    filepath,
    tasks: [],
    meta: {},
    projectName: project.name,
    file: undefined,
    pool: project.pool,
  } as unknown as RunnerTestFile
  file.file = file
  return file
}
