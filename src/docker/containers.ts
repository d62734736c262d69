import {COMPOSE_LABELS} from './compose/labels.js'
import type {ContainerState} from './engine.js'

/**
 * Small questions about a container, asked one way everywhere (as docker compose's own filters do):
 * a label check written inline in six places drifts apart in the seventh.
 */

/** A `docker compose run` container or one of ours (certbot): never a replica of the stack. */
export function isOneOff(container: ContainerState): boolean {
  return container.labels[COMPOSE_LABELS.oneoff] === 'True'
}

export function isNotOneOff(container: ContainerState): boolean {
  return !isOneOff(container)
}

/** The replica number Compose gave the container (0 when it has none). */
export function replicaNumber(container: ContainerState): number {
  return Number(container.labels[COMPOSE_LABELS.number] ?? 0)
}

/** Running, and healthy when it has a healthcheck. */
export function isHealthy(container: ContainerState): boolean {
  return container.running && (container.health === undefined || container.health === 'healthy')
}
