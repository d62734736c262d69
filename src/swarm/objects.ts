import type Docker from 'dockerode'

import {engineMessage} from '../docker/engine.js'
import {STACK_NAMESPACE_LABEL} from './names.js'
import type {SwarmObject} from './spec.js'

/** Configs, secrets, services and the network of one stack, found by the stack label. */

export interface StackObject {
  kind: 'config' | 'secret'
  id: string
  name: string
}

function namespaceFilter(namespace: string): {label: string[]} {
  return {label: [`${STACK_NAMESPACE_LABEL}=${namespace}`]}
}

export async function stackServices(docker: Docker, namespace: string): Promise<Docker.Service[]> {
  return docker.listServices({filters: namespaceFilter(namespace)})
}

export async function stackObjects(docker: Docker, namespace: string): Promise<StackObject[]> {
  const filters = JSON.stringify(namespaceFilter(namespace))
  const configs = (await docker.listConfigs({filters})) as Array<{ID: string; Spec?: {Name?: string}}>
  const secrets = (await docker.listSecrets({filters})) as Array<{ID: string; Spec?: {Name?: string}}>
  return [
    ...configs.map((config) => ({kind: 'config' as const, id: config.ID, name: config.Spec?.Name ?? config.ID})),
    ...secrets.map((secret) => ({kind: 'secret' as const, id: secret.ID, name: secret.Spec?.Name ?? secret.ID})),
  ]
}

export async function stackNetworks(docker: Docker, namespace: string): Promise<Array<{id: string; name: string}>> {
  const networks = await docker.listNetworks({filters: namespaceFilter(namespace)})
  return networks.map((network) => ({id: network.Id, name: network.Name}))
}

/** Create the objects that do not exist yet (same name = same content); returns name -> ID and what was made. */
export async function ensureObjects(
  docker: Docker,
  namespace: string,
  wanted: readonly SwarmObject[],
): Promise<{ids: Map<string, string>; created: StackObject[]}> {
  const ids = new Map<string, string>()
  for (const object of await stackObjects(docker, namespace)) ids.set(object.name, object.id)
  const created: StackObject[] = []
  for (const object of wanted) {
    if (ids.has(object.name)) continue
    const spec = {Name: object.name, Labels: object.labels, Data: object.data.toString('base64')}
    const result = (object.kind === 'config' ? await docker.createConfig(spec) : await docker.createSecret(spec)) as {
      id?: string
      ID?: string
    }
    const id = result.id ?? result.ID ?? ''
    ids.set(object.name, id)
    created.push({kind: object.kind, id, name: object.name})
  }

  return {ids, created}
}

/** Remove objects; one still used by a task (of a service going away) is reported, not fatal. */
export async function removeObjects(docker: Docker, objects: readonly StackObject[]): Promise<string[]> {
  const failures: string[] = []
  for (const object of objects) {
    try {
      if (object.kind === 'config') await docker.getConfig(object.id).remove()
      else await docker.getSecret(object.id).remove()
    } catch (error) {
      if ((error as {statusCode?: number}).statusCode === 404) continue
      failures.push(`${object.kind} ${object.name}: ${engineMessage(error)}`)
    }
  }

  return failures
}
