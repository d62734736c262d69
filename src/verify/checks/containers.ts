import {join} from 'node:path'

import {isHealthy} from '../../docker/containers.js'
import {djangoServices, gatewayContainerName, upstreamName} from '../../manifest/model.js'
import type {Manifest} from '../../manifest/schema.js'
import {PROJECT_PATHS, replicaNames} from '../../manifest/stack.js'
import {parseUpstreams} from '../../gateway/upstreams.js'
import {LABELS} from '../../docker/spec.js'
import {readFileIfExists} from '../../util/files.js'
import {retryUntil} from '../../util/retry.js'
import {serviceOf, type ContainerState} from '../engine.js'
import {fail, pass, type Check} from '../types.js'

function describeState(container: ContainerState): string {
  if (!container.running)
    return `${container.name} ${container.status}${container.status === 'exited' ? ` (exit code ${container.exitCode})` : ''}`
  return `${container.name} ${container.health ?? 'running'}`
}

export interface ContainersVerdict {
  problems: string[]
  upstreams: Record<string, {listed: string[]; running: string[]}>
}

/** The pure half: what is wrong with these containers and this upstreams.conf for this manifest. */
export function judgeContainers(
  manifest: Manifest,
  containers: ContainerState[],
  /** upstreams.conf; `dns` when the gateway resolves the replicas at run time (a swarm): nothing to compare. */
  upstreamsText: string | undefined | 'dns',
): ContainersVerdict {
  const problems: string[] = []
  // Matched by Compose's service and number labels, not by name: a stack that `docker-compose up` (v1,
  // `<project>_web_1`) or `docker compose up` started is the same stack as ours.
  const present = new Set(containers.map((container) => `${serviceOf(container)}#${container.labels[LABELS.number]}`))
  const expected = [
    ...djangoServices(manifest).flatMap((service) =>
      replicaNames(manifest, service.name, service.replicas).map((name, index) => ({
        service: service.name,
        number: index + 1,
        name,
      })),
    ),
    {service: 'gateway', number: 1, name: gatewayContainerName(manifest)},
  ]
  const missing = expected.filter((item) => !present.has(`${item.service}#${item.number}`)).map((item) => item.name)
  if (missing.length > 0) problems.push(`missing: ${missing.join(', ')} (run \`create-gateway up\`)`)
  for (const container of containers) {
    if (!isHealthy(container)) problems.push(describeState(container))
  }

  const upstreams: ContainersVerdict['upstreams'] = {}
  if (upstreamsText === 'dns') {
    for (const service of djangoServices(manifest)) {
      const running = containers
        .filter((container) => serviceOf(container) === service.name && isHealthy(container))
        .map((container) => container.name)
        .sort()
      upstreams[upstreamName(service.name)] = {listed: running, running}
    }

    return {problems, upstreams}
  }

  const listed = upstreamsText === undefined ? undefined : parseUpstreams(upstreamsText)
  if (listed === undefined) problems.push(`${PROJECT_PATHS.upstreams} is missing`)
  for (const service of djangoServices(manifest)) {
    const name = upstreamName(service.name)
    const running = containers
      .filter((container) => serviceOf(container) === service.name && isHealthy(container))
      .map((container) => container.name)
      .sort()
    // `server web:8000` (the file init writes) is every replica: Docker's DNS resolves it to all of them.
    const byService = listed?.[name]?.includes(service.name) ?? false
    const servers = byService ? running : [...(listed?.[name] ?? [])].sort()
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

const STARTING_GRACE_MS = 20_000

export const containersCheck: Check = {
  id: 'containers',
  title: 'Containers running and healthy',
  async run({dir, manifest, engine}) {
    // Right after `up` or `scale` the engine may not have run a new container's first healthcheck yet
    // (`starting`): give it the length of a few intervals before judging.
    const containers = await retryUntil(
      () => engine.containers(),
      (list) => !list.some((container) => container.running && container.health === 'starting'),
      {timeoutMs: STARTING_GRACE_MS, intervalMs: 500, describe: 'containers to finish starting'},
    ).catch(() => engine.containers())
    const upstreamsText: string | undefined | 'dns' =
      engine.discovery === 'dns'
        ? 'dns'
        : (await readFileIfExists(join(dir, PROJECT_PATHS.upstreams)))?.toString('utf8')

    const {problems, upstreams} = judgeContainers(manifest, containers, upstreamsText)
    const data = {
      containers: containers.map((container) => ({
        name: container.name,
        service: serviceOf(container),
        status: container.status,
        health: container.health ?? null,
      })),
      upstreams,
    }
    if (problems.length > 0) return fail(problems.join('; '), data)
    const healthy = containers.filter(isHealthy).length
    const pools = Object.entries(upstreams).map(([name, {listed}]) => `${name}: ${listed.length}`)
    const upstream = upstreamsText === 'dns' ? 'resolved by DNS' : 'upstream matches'
    return pass(`${healthy}/${containers.length} running and healthy; ${upstream} (${pools.join(', ')})`, data)
  },
}
