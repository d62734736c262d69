import {isHealthy} from '../docker/containers.js'
import {engineFailure, engineMessage, type ContainerState, type Engine} from '../docker/engine.js'
import type {DesiredContainer} from '../docker/spec.js'
import {OperationError} from '../errors.js'
import type {StackServiceSpec} from '../manifest/stack.js'
import type {Progress} from '../util/progress.js'

/**
 * The replica steps `scale` and the rolling update of `up` share: create and start a replica exactly
 * as `up` would, and stop one gracefully (`removeQuietly` in docker/rollback.ts removes the ones a failed
 * run created).
 */

export interface Replica {
  id: string
  name: string
  service: string
  number: number
}

/** Create and start `desired`; a name already taken by another container gets its own message. */
export async function startReplica(
  engine: Engine,
  desired: DesiredContainer,
  project: string,
  progress: Progress,
  created: Replica[],
): Promise<Replica> {
  progress(`Creating ${desired.name}`)
  let id: string
  try {
    id = await engine.createContainer(desired.options)
  } catch (error) {
    if (/already in use/i.test(engineMessage(error))) {
      throw new OperationError(`A container named ${desired.name} already exists and is not a replica of ${project}`, {
        hint: `Remove it (\`docker rm -f ${desired.name}\`) and run this again.`,
        cause: error,
      })
    }

    throw engineFailure(`Creating ${desired.name}`, error)
  }

  const replica = {id, name: desired.name, service: desired.service, number: desired.number}
  // Recorded before the start, so a failed start is removed with the rest.
  created.push(replica)
  // Its other networks, as Compose connects them on engines before API 1.44 (one network at create).
  for (const network of desired.extraNetworks) await engine.connectNetwork(network.name, id, network.endpoint)
  progress(`Starting ${desired.name}`)
  try {
    await engine.startContainer(id)
  } catch (error) {
    throw engineFailure(`Starting ${desired.name}`, error)
  }

  return replica
}

/** SIGTERM (the service's stop signal) and its grace period for in-flight requests, then remove. */
export async function stopReplica(
  engine: Engine,
  spec: StackServiceSpec | undefined,
  container: {id: string; name: string; running?: boolean},
  progress: Progress,
): Promise<void> {
  const grace = spec?.stopGraceSeconds ?? 10
  if (container.running !== false) {
    progress(`Stopping ${container.name} (${spec?.stopSignal ?? 'SIGTERM'}, up to ${grace} s for in-flight requests)`)
    await engine.stopContainer(container.id, grace)
  }

  progress(`Removing ${container.name}`)
  await engine.removeContainer(container.id)
}

/**
 * Whether a replica `scale` keeps may take requests: healthy in the engine's eyes or, when this run
 * waited for it (it was starting), running and not unhealthy (its healthcheck passed for us while the
 * engine may still say `starting`). Otherwise the reason, in the engine's word for its state.
 */
export async function keptReplicaState(
  engine: Engine,
  kept: ContainerState,
  waited: boolean,
): Promise<{serves: true} | {serves: false; why: string}> {
  const state = waited ? await engine.container(kept.id) : kept
  if (state && (waited ? state.running && state.health !== 'unhealthy' : isHealthy(state))) return {serves: true}
  return {serves: false, why: state?.health ?? state?.status ?? 'gone'}
}
