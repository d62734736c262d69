import {connectEngine} from '../docker/engine.js'
import type {LogEngine} from '../docker/gateway-log.js'
import {UsageError} from '../errors.js'
import {loadManifest} from '../manifest/load.js'
import {findDeployedStack} from '../swarm/connect.js'
import {TopSession} from './session.js'
import {GatewayAccessLog, SwarmGatewayAccessLog, type AccessLogSource} from './source.js'
import {parseWindow} from './stats.js'

export const DEFAULT_WINDOW = '60s'

export interface TopOptions {
  dir: string
  window: string
  /** Defaults to the gateway's stdout, read through the engine (see `defaultSource`). */
  source?: AccessLogSource
  /** The swarm manager to look for a deployed stack on (`--host`); DOCKER_HOST when absent. */
  host?: string
  topClients?: number
}

/** A session over the project's access log, with the manifest's routes and rate-limit status. */
export async function openTop(
  options: TopOptions,
): Promise<{session: TopSession; source: AccessLogSource; rateLimitStatus: number}> {
  const windowMs = parseWindow(options.window)
  if (windowMs === undefined)
    throw new UsageError(`--window: "${options.window}" is not a duration`, {hint: 'Use seconds, e.g. 60s, 5m or 1h.'})
  const manifest = await loadManifest(options.dir)
  const source = options.source ?? (await defaultSource(manifest.name, options.host))
  const rateLimitStatus = manifest.rateLimit.status
  const session = new TopSession(source, {
    windowMs,
    rateLimitStatus,
    routes: manifest.routes.map((route) => ({path: route.path, service: route.service})),
    topClients: options.topClients,
  })
  return {session, source, rateLimitStatus}
}

/**
 * Which stack `top` reads, as `status`, `logs` and `verify` choose: a stack deployed to a swarm (found
 * by its stack label on the manager at --host, else DOCKER_HOST) when there is one, through its gateway
 * service's log; otherwise the stack `up` started, through its gateway container's log. With --host,
 * always that manager (an engine that is not a swarm manager is an error, as for the other commands).
 */
export async function defaultSource(
  project: string,
  host?: string,
  engines: {
    findDeployedStack: typeof findDeployedStack
    connectEngine: () => Promise<LogEngine>
  } = {findDeployedStack, connectEngine},
): Promise<AccessLogSource> {
  const swarm = await engines.findDeployedStack(project, host)
  if (swarm) return new SwarmGatewayAccessLog(swarm.docker, project, {endpoint: swarm.endpoint})
  return new GatewayAccessLog(await engines.connectEngine(), project)
}
