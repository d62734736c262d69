import {OperationError} from '../errors.js'
import {retryUntil, untilAborted, WaitTimeoutError, type Clock} from '../util/retry.js'
import type {ContainerState, Engine} from './engine.js'
import {lastLogLines} from './logs.js'

const POLL_INTERVAL_MS = 500
const LOG_LINES = 50

/** Waits for containers to become healthy (`up`, `scale`, the rolling update), failing fast with their logs. */

class ContainerFailedError extends OperationError {}
class WaitAborted extends Error {}

/** A container `up` waits for; `wave` is its place in the start order (the gateway comes later). */
export interface AwaitedContainer {
  id: string
  name: string
  service: string
  wave: number
  /**
   * The container's own healthcheck command (exec form). While the engine still reports `starting`,
   * we run it ourselves: Docker runs the first check only after a whole interval (engines before 25
   * have no start_interval), and the stack serves long before that.
   */
  probe?: string[]
}

async function withLogs(engine: Engine, container: AwaitedContainer, error: unknown): Promise<Error> {
  const message = error instanceof Error ? error.message : String(error)
  const lines = await lastLogLines(engine, container.id, LOG_LINES)
  const logs =
    lines.length > 0
      ? [`Last ${lines.length} log lines of ${container.name}:`, ...lines.map((line) => `  | ${line}`)]
      : [`${container.name} wrote no logs.`]
  return new OperationError([message, ...logs].join('\n'), {
    hint: `Fix the cause above and run \`create-gateway up\` again; \`create-gateway logs ${container.service}\` shows more.`,
    cause: error,
  })
}

/** Why a container can no longer become healthy, or undefined while it still can. */
function failure(
  state: ContainerState | undefined,
  container: AwaitedContainer,
  restartsAtStart: number,
): ContainerFailedError | undefined {
  const who = `${container.name} (${container.service})`
  if (!state) return new ContainerFailedError(`${who} disappeared while waiting for it to be healthy`)
  if (state.status === 'exited' || state.status === 'dead') {
    return new ContainerFailedError(
      `${who} exited with code ${state.exitCode} before becoming healthy${state.error ? `: ${state.error}` : ''}`,
    )
  }

  if (state.status === 'restarting' || state.restartCount > restartsAtStart) {
    return new ContainerFailedError(`${who} crashed (exit code ${state.exitCode}) and is being restarted`)
  }

  if (state.health === 'unhealthy')
    return new ContainerFailedError(`${who} is unhealthy: its healthcheck keeps failing`)
  return undefined
}

async function probePasses(engine: Engine, container: AwaitedContainer): Promise<boolean> {
  try {
    return (await engine.exec(container.id, container.probe!)).exitCode === 0
  } catch {
    return false // not exec-able yet (starting, restarting): the engine's own check decides
  }
}

/** A healthcheck test in exec form (`['CMD', ...]`), or undefined for shell or disabled forms. */
export function probeCommand(test: readonly string[]): string[] | undefined {
  return test[0] === 'CMD' && test.length > 1 ? test.slice(1) : undefined
}

/**
 * Wait until the container's healthcheck passes. Stops at once when it cannot pass any more: the
 * container exited, the restart policy restarted it, or the engine already calls it unhealthy.
 */
async function waitHealthy(
  engine: Engine,
  container: AwaitedContainer,
  timeoutMs: number,
  clock: Clock,
  abort: AbortController,
): Promise<void> {
  let restartsAtStart: number | undefined
  try {
    await retryUntil(
      async () => {
        const state = await engine.container(container.id)
        restartsAtStart ??= state?.restartCount ?? 0
        const failed = failure(state, container, restartsAtStart)
        if (failed) throw failed
        if (state!.running && state!.health === 'starting' && container.probe && (await probePasses(engine, container)))
          return {...state!, health: 'healthy' as const}
        return state!
      },
      (state) => (state.health === undefined ? state.running : state.health === 'healthy'),
      {
        timeoutMs,
        intervalMs: POLL_INTERVAL_MS,
        clock,
        describe: `${container.name} (${container.service}) to be healthy`,
        explain: (state) => `state ${state.status}, health ${state.health ?? 'none'}`,
        // Another container already failed, or the user interrupted `up`: stop polling.
        signal: abort.signal,
      },
    )
  } catch (error) {
    if (error === abort.signal.reason) return
    // Interrupted: `up` is removing the containers, so what this last poll saw means nothing.
    if (abort.signal.aborted && !(abort.signal.reason instanceof WaitAborted)) return
    // Stop the other waits before reading logs, so they do not report the same failure again.
    abort.abort(new WaitAborted())
    if (error instanceof ContainerFailedError || error instanceof WaitTimeoutError)
      throw await withLogs(engine, container, error)
    throw error
  }
}

/**
 * Wait for several containers at once; the first failure ends the other waits. When a later
 * container fails (the gateway) while one it depends on has failed too (a replica crashed, so its
 * name no longer resolves), the dependency's failure is the cause and is the one reported.
 * An aborted `signal` ends every wait at once and rejects with the signal's reason.
 */
export async function waitAllHealthy(
  engine: Engine,
  containers: AwaitedContainer[],
  timeoutMs: number,
  clock: Clock,
  signal?: AbortSignal,
): Promise<void> {
  const controller = new AbortController()
  const stop = () => controller.abort(signal!.reason)
  if (signal?.aborted) stop()
  signal?.addEventListener('abort', stop, {once: true})
  let results: Array<PromiseSettledResult<void>>
  try {
    const waits = Promise.allSettled(
      containers.map((container) => waitHealthy(engine, container, timeoutMs, clock, controller)),
    )
    // A poll in flight (an inspect, a healthcheck exec) is not awaited: it ends on its own.
    results = await (signal ? untilAborted(waits, signal) : waits)
  } finally {
    signal?.removeEventListener('abort', stop)
  }

  const failed = containers.findIndex((_, index) => results[index]!.status === 'rejected')
  if (failed === -1) return
  const reason = (results[failed] as PromiseRejectedResult).reason as unknown
  for (const earlier of containers.filter((container) => container.wave < containers[failed]!.wave)) {
    const cause = failure(await engine.container(earlier.id), earlier, Number.POSITIVE_INFINITY)
    if (cause) {
      const message = reason instanceof Error ? reason.message.split('\n')[0] : String(reason)
      cause.message += ` (and then: ${message})`
      throw await withLogs(engine, earlier, cause)
    }
  }

  throw reason
}
