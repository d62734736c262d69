import type {Manifest, Route} from '../manifest/schema.js'

/**
 * The arithmetic of NGINX's `limit_req ... burst=B nodelay` (a leaky bucket counted in milli-requests):
 * a drained bucket takes B + 1 requests at once, then one more every 1/rate seconds. Requests arriving
 * over a window of W seconds, faster than the rate, therefore get about B + 1 + rate x W accepted.
 */

/** NGINX rate syntax (`10r/s`, `600r/m`) as requests per second. */
export function ratePerSecond(rate: string): number {
  const match = /^(\d+)r\/([sm])$/.exec(rate)
  if (!match) throw new Error(`not an NGINX rate: ${rate}`)
  const count = Number(match[1])
  return match[2] === 's' ? count : count / 60
}

/** Client and server clocks see the window a little differently (connection setup, event-loop ticks). */
export const TIMING_SLACK_MS = 50
/** NGINX rounds elapsed time to whole milliseconds and the bucket to milli-requests. */
export const BASE_TOLERANCE = 2

export interface ZoneLimit {
  /** Requests per second. */
  rate: number
  burst: number
}

export interface ExpectedRange {
  min: number
  max: number
  tolerance: number
}

/** Tolerance for a rate: a fixed 2 plus what the rate lets through during TIMING_SLACK_MS. */
export function toleranceFor(rate: number): number {
  return BASE_TOLERANCE + Math.ceil((rate * TIMING_SLACK_MS) / 1000)
}

/**
 * How many of `amount` requests, sent over `windowMs` (first to last request sent) faster than the
 * rate, the bucket accepts: [B + 1 + floor(rate x W) - tol, B + 1 + ceil(rate x W) + tol], clamped to
 * [0, amount].
 */
export function expectedAcceptedRange(
  limit: ZoneLimit,
  windowMs: number,
  amount: number,
  tolerance = toleranceFor(limit.rate),
): ExpectedRange {
  const refill = (limit.rate * Math.max(0, windowMs)) / 1000
  const min = limit.burst + 1 + Math.floor(refill) - tolerance
  const max = limit.burst + 1 + Math.ceil(refill) + tolerance
  return {min: Math.max(0, Math.min(min, amount)), max: Math.min(max, amount), tolerance}
}

/** Time for a full bucket to drain, plus a margin: after it, the next request meets an empty bucket. */
export function drainMs(limit: ZoneLimit, marginMs = 500): number {
  return Math.ceil(((limit.burst + 1) / limit.rate) * 1000) + marginMs
}

/** The bucket a route's requests fall into: its own rateLimit, else the global one. */
export function routeLimit(manifest: Manifest, route: Route): ZoneLimit {
  const zone = route.rateLimit ?? manifest.rateLimit
  return {rate: ratePerSecond(zone.rate), burst: zone.burst}
}

/**
 * The route to load-test: a Django route without auth when there is one (no credentials to send, and
 * its own service answers), then any Django route, then anything else.
 */
export function pickLoadTestRoute(manifest: Manifest): Route {
  const django = (route: Route) => manifest.services[route.service]?.kind === 'django'
  return (
    manifest.routes.find((route) => django(route) && route.auth === 'none') ??
    manifest.routes.find(django) ??
    manifest.routes.find((route) => route.auth === 'none') ??
    manifest.routes[0]!
  )
}

/** Requests to send: the seed's `ab -n 100`, more when the burst alone would take most of them. */
export function loadTestAmount(limit: ZoneLimit): number {
  return Math.min(2000, Math.max(100, 3 * (limit.burst + 1)))
}
