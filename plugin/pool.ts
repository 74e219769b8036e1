/**
 * The `ktstr` pool for Vitest 4 (`pool: ktstrPool()`, or `pool: 'ktstr'` with the `ktstr()` plugin):
 * every test file runs in its own freshly booted guest.
 */
import path from 'node:path'
import type { PoolRunnerInitializer, TestProject } from 'vitest/node'
import { packageRoot } from '../src/util/paths.js'
import type { VmSpec } from '../src/vm/spec/request.js'
import { hostCapacity, maxGuests, ResourceGate } from './capacity.js'
import { guestFiles } from './guest-files.js'
import { type BootGuest, KtstrPoolWorker, POOL_NAME, type WorkerSetup } from './pool-worker.js'
import { guestSize, type KtstrOptions, specFromOptions } from './spec.js'
import { assertSupportedVitest } from './vitest-version.js'

export { POOL_NAME }

export interface KtstrPoolOptions extends KtstrOptions {
  /** Boots a guest; replaces ktstr's own `bootGuest` (a seam for tests that use a fake guest). */
  boot?: BootGuest
  /** The topology and memory given here win over each file's docblock (used by the gauntlet). */
  fixedTopology?: boolean
}

export function ktstrPool(options: KtstrPoolOptions = {}): PoolRunnerInitializer {
  assertSupportedVitest()
  const { boot, fixedTopology, ...vmOptions } = options
  const setup: WorkerSetup = {
    boot: boot ?? (async (req, o) => (await import('../src/vm/boot.js')).bootGuest(req, o)),
    defaults: specFromOptions(vmOptions),
    fixedTopology: fixedTopology === true,
    gate: (o) => (userChoseMaxWorkers(o.project) ? undefined : (sharedGate ??= new ResourceGate(hostCapacity()))),
    workerEntry: path.join(packageRoot(), 'dist', 'runtime', 'vitest', 'worker.js'),
    snapshotEnvironment: snapshotEnvironmentPath(),
    guestFiles: (o) =>
      guestFiles({
        vitestDist: o.distPath,
        projectRoot: o.project.config.root,
        environment: o.environment.name,
        ...(o.project.config.coverage.enabled ? { coverageProvider: o.project.config.coverage.provider } : {}),
      }),
  }
  return { name: POOL_NAME, createPoolWorker: (o) => new KtstrPoolWorker(o, setup) }
}

/** The compiled module Vitest loads in the guest as its snapshot environment. */
export function snapshotEnvironmentPath(): string {
  return path.join(packageRoot(), 'dist', 'runtime', 'vitest', 'snapshot-environment.js')
}

/**
 * The test API (`import 'ktstr'`) is imported natively in the guest, from the guest image, never
 * through Vite's module runner: one module instance with what the guest's init runs, loaded (and
 * in a warm start already compiled) from the guest's own disk, not fetched module by module over
 * the channel. Vite externalizes it by itself when ktstr is installed under node_modules; this
 * covers a linked or workspace copy (and this repository's own examples).
 */
export function runtimeModules(): RegExp {
  const runtime = path.join(packageRoot(), 'dist', 'runtime') + path.sep
  return new RegExp(`^${runtime.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)
}

/** Projects whose maxWorkers ktstr chose (so the resource gate stays in charge). */
const chosenByKtstr = new WeakSet<TestProject>()

function userChoseMaxWorkers(project: TestProject): boolean {
  return !chosenByKtstr.has(project) && Boolean(project.config.maxWorkers || project.vitest.config.maxWorkers)
}

/** One gate for the whole Vitest process: all ktstr projects share the host. */
let sharedGate: ResourceGate | undefined

/**
 * Unless the user set maxWorkers: as many files at once as guests of the default size fit the host.
 * Vitest refuses projects with different maxWorkers in one `sequence.groupOrder`, so a ktstr project
 * that shares the default group with other pools moves to a group after theirs.
 */
export function applyDefaultParallelism(project: TestProject, defaults: VmSpec): void {
  if (project.config.maxWorkers || project.vitest.config.maxWorkers) return
  project.config.maxWorkers = maxGuests(guestSize(defaults))
  chosenByKtstr.add(project)
  const others = project.vitest.projects.filter((p) => p.config.pool !== POOL_NAME)
  if (project.config.sequence.groupOrder === 0 && others.some((p) => p.config.sequence.groupOrder === 0)) {
    project.config.sequence.groupOrder = Math.max(0, ...others.map((p) => p.config.sequence.groupOrder)) + 1
  }
}
