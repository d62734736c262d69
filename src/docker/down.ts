import type {Manifest} from '../manifest/schema.js'
import {buildStackSpec} from '../manifest/stack.js'
import {connectEngine, engineFailure, type ContainerState, type StackOptions} from './engine.js'
import {LABELS, startWaves} from './spec.js'

export interface DownOptions extends StackOptions {
  /** Also remove the project's labelled volumes. */
  volumes?: boolean
  /** Seconds each container may take to stop before SIGKILL, instead of its service's grace period. */
  timeoutSeconds?: number
  /** Find and report what would be removed; stop and remove nothing. */
  dryRun?: boolean
}

export interface DownResult {
  project: string
  containers: string[]
  networks: string[]
  volumes: string[]
  dryRun?: boolean
}

/**
 * Stop and remove every container and network labelled with the project (including those that
 * `docker compose up` made), the gateway first so no request reaches a stopping replica. Files stay.
 */
export async function downStack(manifest: Manifest, options: DownOptions = {}): Promise<DownResult> {
  const progress = options.onProgress ?? (() => {})
  const stack = buildStackSpec(manifest)
  const engine = options.engine ?? (await connectEngine())
  const projectLabel = {[LABELS.project]: stack.project}
  const containers = await engine.containers(projectLabel)

  // Reverse start order: dependents (the gateway) stop before what they depend on.
  const waves = startWaves(stack)
  const waveOf = (container: ContainerState) => {
    const index = waves.findIndex((wave) => wave.some((spec) => spec.service === container.labels[LABELS.service]))
    return index === -1 ? -1 : index
  }

  const order = [...new Set(containers.map((container) => waveOf(container)))].sort((a, b) => b - a)
  const removed: string[] = []
  for (const wave of order) {
    const group = containers.filter((container) => waveOf(container) === wave)
    await Promise.all(
      group.map(async (container) => {
        const grace =
          options.timeoutSeconds ??
          stack.services.find((spec) => spec.service === container.labels[LABELS.service])?.stopGraceSeconds ??
          10
        if (options.dryRun) {
          removed.push(container.name)
          return
        }

        progress(`Stopping ${container.name}`)
        try {
          await engine.stopContainer(container.id, grace)
          await engine.removeContainer(container.id, {volumes: options.volumes})
        } catch (error) {
          throw engineFailure(`Removing ${container.name}`, error)
        }

        removed.push(container.name)
      }),
    )
  }

  const networks: string[] = []
  for (const network of await engine.networks(projectLabel)) {
    if (options.dryRun) {
      networks.push(network.name)
      continue
    }

    progress(`Removing network ${network.name}`)
    try {
      await engine.removeNetwork(network.id)
    } catch (error) {
      throw engineFailure(
        `Removing network ${network.name} (is a container outside the project still attached?)`,
        error,
      )
    }

    networks.push(network.name)
  }

  const volumes: string[] = []
  if (options.volumes) {
    for (const volume of await engine.volumes(projectLabel)) {
      if (options.dryRun) {
        volumes.push(volume.name)
        continue
      }

      progress(`Removing volume ${volume.name}`)
      await engine.removeVolume(volume.name)
      volumes.push(volume.name)
    }
  }

  return {project: stack.project, containers: removed, networks, volumes, ...(options.dryRun ? {dryRun: true} : {})}
}
