import type {Progress} from '../util/progress.js'
import type Docker from 'dockerode'

import {OperationError} from '../errors.js'
import {retryUntil, type Clock} from '../util/retry.js'

/**
 * Waiting for a stack to converge: every service has as many running tasks as it wants, and no update
 * is still rolling. A task with a healthcheck reports `running` only once healthy, so running is healthy.
 */

export interface TaskView {
  id: string
  /** Task slot (replicated services): `web.2`. */
  slot?: number
  nodeId: string
  state: string
  desiredState: string
  error?: string
  containerId?: string
  updatedAt?: string
}

export interface ServiceProgress {
  service: string
  desired: number
  running: number
  /** Other states of tasks that should run: {starting: 1, preparing: 1}. */
  pending: Record<string, number>
  /** The update's state when one ran: updating | completed | paused | rollback_started | rollback_completed ... */
  update?: string
  /** The newest task error, for messages. */
  lastError?: string
}

/** A task as the Engine API returns it (dockerode's type names only a few fields). */
export interface RawTask {
  ID?: string
  Slot?: number
  NodeID?: string
  DesiredState?: string
  UpdatedAt?: string
  Status?: {State?: string; Err?: string; ContainerStatus?: {ContainerID?: string}}
}

export function toTaskView(task: RawTask): TaskView {
  const status = task.Status
  return {
    id: task.ID ?? '',
    ...(task.Slot === undefined ? {} : {slot: task.Slot}),
    nodeId: task.NodeID ?? '',
    state: status?.State ?? 'unknown',
    desiredState: task.DesiredState ?? 'unknown',
    ...(status?.Err ? {error: status.Err} : {}),
    ...(status?.ContainerStatus?.ContainerID ? {containerId: status.ContainerStatus.ContainerID} : {}),
    ...(task.UpdatedAt ? {updatedAt: task.UpdatedAt} : {}),
  }
}

export function serviceProgress(
  service: string,
  desired: number,
  tasks: readonly TaskView[],
  update?: string,
): ServiceProgress {
  const wanted = tasks.filter((task) => task.desiredState === 'running')
  const pending: Record<string, number> = {}
  for (const task of wanted) if (task.state !== 'running') pending[task.state] = (pending[task.state] ?? 0) + 1
  const failed = [...tasks]
    .filter((task) => task.error)
    .sort((a, b) => (b.updatedAt ?? '').localeCompare(a.updatedAt ?? ''))[0]
  return {
    service,
    desired,
    running: wanted.filter((task) => task.state === 'running').length,
    pending,
    ...(update ? {update} : {}),
    ...(failed?.error ? {lastError: failed.error} : {}),
  }
}

const UPDATE_FAILED = new Set(['paused', 'rollback_started', 'rollback_paused', 'rollback_completed'])

/** Converged: the desired count runs and no update is in flight. Throws when an update failed. */
export function converged(progress: ServiceProgress): boolean {
  if (progress.update && UPDATE_FAILED.has(progress.update))
    throw new OperationError(
      `${progress.service}: the update failed and Swarm ${progress.update.startsWith('rollback') ? 'rolled it back' : 'paused it'}${progress.lastError ? ` (last task error: ${progress.lastError})` : ''}`,
    )
  const updating = progress.update === 'updating'
  return !updating && progress.running === progress.desired && Object.keys(progress.pending).length === 0
}

export function describeProgress(progress: ServiceProgress): string {
  const pending = Object.entries(progress.pending).map(([state, count]) => `${count} ${state}`)
  const update = progress.update && progress.update !== 'completed' ? `, update ${progress.update}` : ''
  return `${progress.service}: ${progress.running}/${progress.desired} running${pending.length > 0 ? ` (${pending.join(', ')})` : ''}${update}`
}

export async function serviceTasks(docker: Docker, name: string): Promise<TaskView[]> {
  const tasks = (await docker.listTasks({filters: {service: [name]}})) as unknown as RawTask[]
  return tasks.map(toTaskView)
}

async function readProgress(docker: Docker, name: string, service: string): Promise<ServiceProgress> {
  const info = (await docker.getService(name).inspect()) as {
    Spec?: {Mode?: {Replicated?: {Replicas?: number}}}
    UpdateStatus?: {State?: string}
  }
  const desired = info.Spec?.Mode?.Replicated?.Replicas ?? 0
  return serviceProgress(service, desired, await serviceTasks(docker, name), info.UpdateStatus?.State)
}

export interface ConvergeOptions {
  timeoutMs: number
  onProgress?: Progress
  clock?: Clock
  signal?: AbortSignal
}

/** Wait (bounded) for every service; a progress line each time a service's count or state changes. */
export async function waitConverged(
  docker: Docker,
  services: ReadonlyArray<{name: string; service: string}>,
  options: ConvergeOptions,
): Promise<ServiceProgress[]> {
  const said = new Map<string, string>()
  return retryUntil(
    async () => {
      const all = await Promise.all(services.map((entry) => readProgress(docker, entry.name, entry.service)))
      for (const progress of all) {
        const line = describeProgress(progress)
        if (said.get(progress.service) !== line) options.onProgress?.(line)
        said.set(progress.service, line)
      }

      return all
    },
    (all) => all.every((progress) => converged(progress)),
    {
      timeoutMs: options.timeoutMs,
      intervalMs: 1000,
      describe: 'the stack to converge',
      explain: (all) =>
        all
          .map((progress) => `${describeProgress(progress)}${progress.lastError ? ` [${progress.lastError}]` : ''}`)
          .join('; '),
      ...(options.clock ? {clock: options.clock} : {}),
      ...(options.signal ? {signal: options.signal} : {}),
    },
  )
}
