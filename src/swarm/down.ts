import type {Progress} from '../util/progress.js'
import type Docker from 'dockerode'

import {engineMessage} from '../docker/engine.js'
import {OperationError} from '../errors.js'
import {retryUntil} from '../util/retry.js'
import {removeObjects, stackNetworks, stackObjects, stackServices} from './objects.js'

/**
 * `docker stack rm`, done the same way: services first, then (once their tasks are gone) the configs,
 * secrets and the network, which lingers a few seconds after its last task.
 */

export const DEFAULT_REMOVE_TIMEOUT_MS = 90_000

export interface SwarmDownResult {
  namespace: string
  services: string[]
  objects: string[]
  networks: string[]
}

async function listLeft(docker: Docker, namespace: string) {
  const objects = await stackObjects(docker, namespace)
  const networks = await stackNetworks(docker, namespace)
  const tasks = (await docker.listTasks({filters: {label: [`com.docker.stack.namespace=${namespace}`]}})) as unknown[]
  return {objects, networks, tasks}
}

export async function removeStack(
  docker: Docker,
  namespace: string,
  options: {timeoutMs?: number; onProgress?: Progress} = {},
): Promise<SwarmDownResult> {
  const say = options.onProgress ?? (() => {})
  const services = await stackServices(docker, namespace)
  for (const service of services) {
    try {
      await docker.getService(service.ID).remove()
    } catch (error) {
      if ((error as {statusCode?: number}).statusCode !== 404)
        throw new OperationError(`Removing service ${service.Spec?.Name}: ${engineMessage(error)}`, {cause: error})
    }
  }

  if (services.length > 0) say(`removed services ${services.map((service) => service.Spec?.Name).join(', ')}`)
  const before = await listLeft(docker, namespace)
  // Objects and the network can go only once no task uses them: retry until everything is gone.
  await retryUntil(
    async () => {
      const left = await listLeft(docker, namespace)
      await removeObjects(docker, left.objects)
      for (const network of left.networks) {
        try {
          await docker.getNetwork(network.id).remove()
        } catch {
          // In use until the last task's endpoint is released; the next round tries again.
        }
      }

      return listLeft(docker, namespace)
    },
    (left) => left.objects.length === 0 && left.networks.length === 0,
    {
      timeoutMs: options.timeoutMs ?? DEFAULT_REMOVE_TIMEOUT_MS,
      intervalMs: 1000,
      describe: `stack ${namespace}'s configs, secrets and network to be removed`,
      explain: (left) =>
        [...left.objects.map((object) => object.name), ...left.networks.map((network) => network.name)].join(', '),
    },
  )
  say(`removed ${before.objects.length} configs and secrets and ${before.networks.length} network(s)`)
  return {
    namespace,
    services: services.map((service) => service.Spec?.Name ?? service.ID),
    objects: before.objects.map((object) => object.name),
    networks: before.networks.map((network) => network.name),
  }
}
