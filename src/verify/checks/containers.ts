import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {djangoServices, gatewayContainerName, upstreamName} from '../../manifest/model.js'
import type {Manifest} from '../../manifest/schema.js'
import {PROJECT_PATHS, replicaNames} from '../../manifest/stack.js'
import {serviceOf, type ContainerState} from '../engine.js'
import {fail, pass, type Check} from '../types.js'

/** `upstream web_upstream { server my-api-web-1:8000 max_fails=3; ... }` -> {web_upstream: ['my-api-web-1', ...]}. */
export function parseUpstreams(text: string): Record<string, string[]> {
  const upstreams: Record<string, string[]> = {}
  const withoutComments = text.replace(/#[^\n]*/g, '')
  for (const block of withoutComments.matchAll(/upstream\s+([A-Za-z0-9_]+)\s*\{([^}]*)\}/g)) {
    const [, name = '', body = ''] = block
    upstreams[name] = [...body.matchAll(/(?:^|[;{\s])server\s+([^\s;]+)/g)].map((match) => (match[1] ?? '').replace(/:\d+$/, ''))
  }

  return upstreams
}

export function isHealthy(container: ContainerState): boolean {
  return container.running && (container.health === undefined || container.health === 'healthy')
}

function describeState(container: ContainerState): string {
  if (!container.running) return `${container.name} ${container.status}${container.status === 'exited' ? ` (exit code ${container.exitCode})` : ''}`
  return `${container.name} ${container.health ?? 'running'}`
}

export interface ContainersVerdict {
  problems: string[]
  upstreams: Record<string, {listed: string[]; running: string[]}>
}

/** The pure half: what is wrong with these containers and this upstreams.conf for this manifest. */
export function judgeContainers(manifest: Manifest, containers: ContainerState[], upstreamsText: string | undefined): ContainersVerdict {
  const problems: string[] = []
  const byName = new Map(containers.map((container) => [container.name, container]))
  const expected = [...djangoServices(manifest).flatMap((service) => replicaNames(manifest, service.name, service.replicas)), gatewayContainerName(manifest)]
  const missing = expected.filter((name) => !byName.has(name))
  if (missing.length > 0) problems.push(`missing: ${missing.join(', ')} (run \`create-gateway up\`)`)
  for (const container of containers) {
    if (!isHealthy(container)) problems.push(describeState(container))
  }

  const upstreams: ContainersVerdict['upstreams'] = {}
  const listed = upstreamsText === undefined ? undefined : parseUpstreams(upstreamsText)
  if (listed === undefined) problems.push(`${PROJECT_PATHS.upstreams} is missing`)
  for (const service of djangoServices(manifest)) {
    const name = upstreamName(service.name)
    const running = containers
      .filter((container) => serviceOf(container) === service.name && isHealthy(container))
      .map((container) => container.name)
      .sort()
    const servers = [...(listed?.[name] ?? [])].sort()
    upstreams[name] = {listed: servers, running}
    if (listed === undefined) continue
    if (!(name in listed)) {
      problems.push(`${PROJECT_PATHS.upstreams} has no upstream ${name}`)
      continue
    }

    const notRunning = servers.filter((server) => !running.includes(server))
    const notListed = running.filter((server) => !servers.includes(server))
    if (notRunning.length > 0) problems.push(`${name} lists ${notRunning.join(', ')}, not running and healthy`)
    if (notListed.length > 0) problems.push(`${name} leaves out running ${notListed.join(', ')}`)
  }

  return {problems, upstreams}
}

export const containersCheck: Check = {
  id: 'containers',
  title: 'Containers running and healthy',
  async run({dir, manifest, engine}) {
    const containers = await engine.containers()
    let upstreamsText: string | undefined
    try {
      upstreamsText = await readFile(join(dir, PROJECT_PATHS.upstreams), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }

    const {problems, upstreams} = judgeContainers(manifest, containers, upstreamsText)
    const data = {
      containers: containers.map((container) => ({name: container.name, service: serviceOf(container), status: container.status, health: container.health ?? null})),
      upstreams,
    }
    if (problems.length > 0) return fail(problems.join('; '), data)
    const healthy = containers.filter(isHealthy).length
    const pools = Object.entries(upstreams).map(([name, {listed}]) => `${name}: ${listed.length}`)
    return pass(`${healthy}/${containers.length} running and healthy; upstream matches (${pools.join(', ')})`, data)
  },
}
