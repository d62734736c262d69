import type Docker from 'dockerode'

import {serviceProgress, serviceTasks, type ServiceProgress, type TaskView} from './converge.js'
import {stackServices} from './objects.js'
import {formatTable} from '../util/table.js'

/** `status` on a swarm: each service's running/desired count and its tasks, node by node. */

export interface SwarmTaskRow {
  service: string
  task: string
  node: string
  state: string
  error?: string
}

export interface SwarmStatus {
  namespace: string
  endpoint: string
  services: ServiceProgress[]
  tasks: SwarmTaskRow[]
}

/** Only the tasks meant to run now; the history of replaced tasks stays in `docker service ps`. */
export function taskRows(
  service: string,
  tasks: readonly TaskView[],
  nodes: ReadonlyMap<string, string>,
): SwarmTaskRow[] {
  return tasks
    .filter((task) => task.desiredState === 'running')
    .sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0))
    .map((task) => ({
      service,
      task: `${service}.${task.slot ?? task.id.slice(0, 12)}`,
      node: nodes.get(task.nodeId) ?? task.nodeId,
      state: task.state,
      ...(task.error ? {error: task.error} : {}),
    }))
}

export async function swarmStatus(docker: Docker, namespace: string, endpoint: string): Promise<SwarmStatus> {
  const nodes = new Map(
    (await docker.listNodes()).map((node) => [node.ID ?? '', node.Description?.Hostname ?? node.ID ?? '']),
  )
  const services: ServiceProgress[] = []
  const tasks: SwarmTaskRow[] = []
  const list = await stackServices(docker, namespace)
  for (const service of list.sort((a, b) => (a.Spec?.Name ?? '').localeCompare(b.Spec?.Name ?? ''))) {
    const name = service.Spec?.Name ?? service.ID
    const short = name.startsWith(`${namespace}_`) ? name.slice(namespace.length + 1) : name
    const desired = service.Spec?.Mode?.Replicated?.Replicas ?? 0
    const serviceTaskList = await serviceTasks(docker, name)
    services.push(serviceProgress(short, desired, serviceTaskList, service.UpdateStatus?.State))
    tasks.push(...taskRows(short, serviceTaskList, nodes))
  }

  return {namespace, endpoint, services, tasks}
}

export function describeSwarmStatus(status: SwarmStatus): string {
  if (status.services.length === 0) return `Stack ${status.namespace}: no services on the swarm at ${status.endpoint}.`
  const lines = [`Stack ${status.namespace} on the swarm at ${status.endpoint}:`]
  for (const service of status.services)
    lines.push(`  ${service.service}: ${service.running}/${service.desired} running`)
  const header = ['TASK', 'NODE', 'STATE', 'ERROR']
  const rows = status.tasks.map((task) => [task.task, task.node, task.state, task.error ?? ''])
  lines.push('', ...formatTable(header, rows))
  return lines.join('\n')
}
