import type {Manifest, Route} from '../../manifest/schema.js'
import {
  describeResponse,
  GATEWAY_ERROR_HEADER,
  GatewayUnreachableError,
  type GatewayClient,
  type GatewayResponse,
} from '../http.js'
import type {VerifyEngine} from '../engine.js'
import {upstreamErrorReason} from '../logfiles.js'
import {fail, pass, type Check} from '../types.js'

/**
 * Header every routed answer carries: `X-Gateway-Route: <route path>` (set `always`). The public path,
 * not the service behind it: the gateway does not tell clients its internal names.
 */
export const ROUTE_HEADER = 'x-gateway-route'
const UPSTREAM_ERRORS = new Set(['upstream-unavailable', 'upstream-timeout'])

/**
 * reached: the service answered. upstream-error: the gateway is fine, the service behind it is not.
 * gateway-error: the gateway itself answered wrongly (or not at all). wrong-service: routed elsewhere.
 */
export type RouteOutcome = 'reached' | 'upstream-error' | 'gateway-error' | 'wrong-service'

export interface RouteVerdict {
  path: string
  service: string
  status?: number
  outcome: RouteOutcome
  ok: boolean
  detail: string
  hostname?: string
}

export function serviceKind(manifest: Manifest, route: Route): 'django' | 'external' {
  return manifest.services[route.service]?.kind === 'external' ? 'external' : 'django'
}

/** The path a check requests on a route: a Django service's JSON API (which names the service), or the route itself. */
export function probePath(manifest: Manifest, route: Route): string {
  return serviceKind(manifest, route) === 'django' ? `${route.path}api/` : route.path
}

/** Reads one answer of a route. `reason` explains an upstream failure (from the error log). */
export function classifyRouteResponse(
  manifest: Manifest,
  route: Route,
  path: string,
  response: GatewayResponse,
  reason?: string,
): RouteVerdict {
  const base = {path: route.path, service: route.service, status: response.status}
  const marker = response.headers[GATEWAY_ERROR_HEADER]
  if (typeof marker === 'string' && UPSTREAM_ERRORS.has(marker)) {
    const why = reason ?? (marker === 'upstream-timeout' ? 'timed out' : 'no answer')
    return {
      ...base,
      outcome: 'upstream-error',
      ok: false,
      detail: `upstream ${route.service} unreachable (${response.status} from gateway): ${why}`,
    }
  }

  if (marker !== undefined) {
    return {
      ...base,
      outcome: 'gateway-error',
      ok: false,
      detail: `gateway answered ${describeResponse(response)} on ${path} before reaching ${route.service}`,
    }
  }

  if (serviceKind(manifest, route) === 'external') {
    if (response.headers[ROUTE_HEADER] === route.path) {
      return {
        ...base,
        outcome: 'reached',
        ok: true,
        detail: `${route.path} -> ${route.service} (upstream answered ${response.status})`,
      }
    }

    return {
      ...base,
      outcome: 'gateway-error',
      ok: false,
      detail: `${path} answered ${response.status} without X-Gateway-Route: ${route.path}: not routed to the upstream`,
    }
  }

  const body = response.json as {service?: unknown; hostname?: unknown} | undefined
  if (response.status === 200 && body && typeof body === 'object') {
    const hostname = typeof body.hostname === 'string' ? body.hostname : undefined
    if (body.service === route.service)
      return {...base, outcome: 'reached', ok: true, detail: `${route.path} -> ${route.service}`, hostname}
    return {
      ...base,
      outcome: 'wrong-service',
      ok: false,
      detail: `${path} answered by service ${String(body.service)}, expected ${route.service}`,
      hostname,
    }
  }

  const snippet = response.body.trim().slice(0, 120)
  return {
    ...base,
    outcome: 'gateway-error',
    ok: false,
    detail: `${path} answered ${describeResponse(response)}, expected 200 JSON from ${route.service}${snippet ? `: ${snippet}` : ''}`,
  }
}

export async function probeRoute(
  context: {manifest: Manifest; http: GatewayClient; engine: VerifyEngine},
  route: Route,
): Promise<RouteVerdict> {
  const {manifest, http, engine} = context
  const path = probePath(manifest, route)
  let response: GatewayResponse
  try {
    response = await http.send({scheme: manifest.tls.mode === 'off' ? 'http' : 'https', path, auth: route.auth})
  } catch (error) {
    if (!(error instanceof GatewayUnreachableError)) throw error
    return {
      path: route.path,
      service: route.service,
      outcome: 'gateway-error',
      ok: false,
      detail: `gateway unreachable: ${error.message}`,
    }
  }

  const marker = response.headers[GATEWAY_ERROR_HEADER]
  const reason =
    typeof marker === 'string' && UPSTREAM_ERRORS.has(marker)
      ? upstreamErrorReason((await engine.gatewayLog.read(2000)).error, path)
      : undefined
  return classifyRouteResponse(manifest, route, path, response, reason)
}

/**
 * Every route must reach its service. An unreachable external upstream fails the check too: the
 * gateway may be configured right, but the route does not work, and this check is about routes working;
 * the detail says which side failed.
 */
export const routesCheck: Check = {
  id: 'routes',
  title: 'Routes reach their services',
  async run(context) {
    const verdicts: RouteVerdict[] = []
    for (const route of context.manifest.routes) verdicts.push(await probeRoute(context, route))
    const failed = verdicts.filter((verdict) => !verdict.ok)
    const data = {routes: verdicts}
    if (failed.length > 0) return fail(failed.map((verdict) => verdict.detail).join('; '), data)
    return pass(verdicts.map((verdict) => verdict.detail).join(', '), data)
  },
}
