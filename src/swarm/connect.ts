import Docker from 'dockerode'

import {EngineUnavailableError, OperationError, UsageError} from '../errors.js'
import {DockerodeEngine, engineMessage, unavailableError} from '../docker/engine.js'
import {withTimeout} from '../util/retry.js'

/**
 * The swarm manager's Engine API: `--host`, else DOCKER_HOST, else the local socket. Every swarm
 * command starts here, so "not a manager" is one clear line before anything is built or created.
 */

export interface SwarmConnection {
  docker: Docker
  /** The same engine behind the container-oriented interface (image builds reuse src/docker/images.ts). */
  engine: DockerodeEngine
  endpoint: string
}

const INFO_TIMEOUT_MS = 10_000

/** `tcp://127.0.0.1:2375`, `http://...`, `unix:///var/run/docker.sock` -> dockerode options. */
export function dockerOptions(host: string): Docker.DockerOptions {
  // host: undefined, or docker-modem would take DOCKER_HOST's host over the socket asked for.
  if (host.startsWith('unix://')) return {socketPath: host.slice('unix://'.length), host: undefined}
  const match = /^(tcp|http|https):\/\/\[?([^\]/]+?)\]?:(\d+)\/?$/.exec(host)
  if (!match) throw new UsageError(`--host ${host}: expected tcp://HOST:PORT or unix:///path/to/docker.sock`)
  return {host: match[2], port: Number(match[3]), protocol: match[1] === 'https' ? 'https' : 'http'}
}

/** The swarm state `docker info` reports, judged: undefined when the engine is a usable manager. */
export function managerProblem(info: {
  Swarm?: {LocalNodeState?: string; ControlAvailable?: boolean}
}): string | undefined {
  const state = info.Swarm?.LocalNodeState ?? 'inactive'
  if (state !== 'active') return `it is not part of a swarm (swarm: ${state})`
  if (!info.Swarm?.ControlAvailable) return 'it is a swarm worker, not a manager'
  return undefined
}

export async function connectSwarm(host?: string): Promise<SwarmConnection> {
  const endpoint = host ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'
  const docker = host ? new Docker(dockerOptions(host)) : new Docker()
  let info: {Swarm?: {LocalNodeState?: string; ControlAvailable?: boolean}}
  try {
    info = await withTimeout(docker.info(), INFO_TIMEOUT_MS, `the Docker engine at ${endpoint} to answer`)
  } catch (error) {
    throw (
      unavailableError(error, endpoint) ??
      new EngineUnavailableError(`Docker engine at ${endpoint} did not answer: ${engineMessage(error)}`, {cause: error})
    )
  }

  const problem = managerProblem(info)
  if (problem)
    throw new OperationError(`The Docker engine at ${endpoint} is not a swarm manager: ${problem}.`, {
      hint: 'Point DOCKER_HOST (or --host) at a manager: `docker node ls` works there. To try one locally: fixtures/swarm/cluster.sh up.',
    })
  return {docker, engine: new DockerodeEngine(docker, endpoint), endpoint}
}

/**
 * The engine at `host` (or DOCKER_HOST) if it is a swarm manager holding stack `namespace`; undefined
 * otherwise, and on any failure: the one-host commands then go on as before and say what they say.
 */
export async function findDeployedStack(namespace: string, host?: string): Promise<SwarmConnection | undefined> {
  let connection: SwarmConnection
  try {
    connection = await connectSwarm(host)
  } catch (error) {
    if (host) throw error
    return undefined
  }

  const services = await connection.docker.listServices({
    filters: {label: [`com.docker.stack.namespace=${namespace}`]},
  })
  if (services.length > 0 || host) return connection
  return undefined
}
