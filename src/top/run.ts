import {connectEngine} from '../docker/engine.js'
import {UsageError} from '../errors.js'
import {loadManifest} from '../manifest/load.js'
import {TopSession} from './session.js'
import {GatewayAccessLog, type AccessLogSource} from './source.js'
import {parseWindow} from './stats.js'

export const DEFAULT_WINDOW = '60s'

export interface TopOptions {
  dir: string
  window: string
  /** Defaults to the gateway's stdout, read through the engine. */
  source?: AccessLogSource
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
  const source = options.source ?? new GatewayAccessLog(await connectEngine(), manifest.name)
  const rateLimitStatus = manifest.rateLimit.status
  const session = new TopSession(source, {
    windowMs,
    rateLimitStatus,
    routes: manifest.routes.map((route) => ({path: route.path, service: route.service})),
    topClients: options.topClients,
  })
  return {session, source, rateLimitStatus}
}
