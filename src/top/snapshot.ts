import type {TopRecord} from './record.js'
import {countStatus, emptyStatus, latencyMs, type Latency, type StatusCounts} from './stats.js'

/**
 * The snapshot `top` shows and `top --once --json` prints, built from records only (no I/O, no
 * clock): the same object feeds the panels and the JSON, so they cannot disagree.
 */

export interface RouteRow {
  /** The route's path; '' gathers requests no route matched. */
  path: string
  service: string
  requests: number
  /** Requests per second over the window. */
  rate: number
  status: StatusCounts
  /** request_time, milliseconds. */
  latency: Latency
  /** upstream_response_time of the last attempt, milliseconds; nulls when NGINX answered itself. */
  upstreamLatency: Latency
  /** null when no request of the route carries a cache status (caching off, or a log without it). */
  cacheHits: number | null
  cacheHitRatio: number | null
}

export interface UpstreamRow {
  /** The replica as NGINX reached it (ip:port), with its container name when known. */
  addr: string
  replica?: string
  service: string
  requests: number
  rate: number
  status: StatusCounts
  latency: Latency
}

export interface ClientRow {
  addr: string
  requests: number
}

export interface Snapshot {
  window: {seconds: number; from: string; to: string}
  requests: number
  routes: RouteRow[]
  upstreams: UpstreamRow[]
  clients: ClientRow[]
}

export interface SnapshotOptions {
  windowMs: number
  /** End of the window, ms since the epoch. */
  now: number
  /** The manifest's rateLimit.status. */
  rateLimitStatus: number
  /** Routes of the manifest, shown even with no request in the window. */
  routes?: ReadonlyArray<{path: string; service: string}>
  /** ip:port -> container name. */
  replicas?: ReadonlyMap<string, string>
  topClients?: number
}

const CACHE_HITS = new Set(['HIT', 'STALE', 'UPDATING', 'REVALIDATED'])

function round(value: number, digits = 2): number {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}

/**
 * The route whose location serves `uri`: NGINX picks the longest matching prefix. Needed for refusals
 * of protected routes: the gateway answers them from a shared named location (@api_key_required,
 * @jwt_required), and after that internal redirect the log line carries an empty route.
 */
export function ownerOf<T extends {path: string}>(uri: string, byLength: readonly T[]): T | undefined {
  return byLength.find((route) => uri.startsWith(route.path))
}

/** Records in (now - windowMs, now]: NGINX logs whole seconds, so a line stamped `now` is inside. */
export function inWindow(records: readonly TopRecord[], windowMs: number, now: number): TopRecord[] {
  const from = now - windowMs
  return records.filter((record) => record.time > from && record.time <= now)
}

export function buildSnapshot(records: readonly TopRecord[], options: SnapshotOptions): Snapshot {
  const seconds = options.windowMs / 1000
  const inside = inWindow(records, options.windowMs, options.now)

  const routes = new Map<string, {row: RouteRow; times: number[]; upstreamTimes: number[]; cached: number}>()
  const addRoute = (path: string, service: string) => {
    let entry = routes.get(path)
    if (!entry) {
      entry = {
        row: {
          path,
          service,
          requests: 0,
          rate: 0,
          status: emptyStatus(),
          latency: latencyMs([]),
          upstreamLatency: latencyMs([]),
          cacheHits: null,
          cacheHitRatio: null,
        },
        times: [],
        upstreamTimes: [],
        cached: 0,
      }
      routes.set(path, entry)
    }

    return entry
  }

  for (const route of options.routes ?? []) addRoute(route.path, route.service)
  const upstreams = new Map<string, {row: UpstreamRow; times: number[]}>()
  const clients = new Map<string, number>()

  const byLength = [...(options.routes ?? [])].sort((a, b) => b.path.length - a.path.length)
  for (const record of inside) {
    const owner = record.route === '' && record.status === 401 ? ownerOf(record.uri, byLength) : undefined
    const route = owner ? addRoute(owner.path, owner.service) : addRoute(record.route, record.service)
    route.row.requests += 1
    countStatus(route.row.status, record.status, options.rateLimitStatus)
    route.times.push(record.requestTime)
    const last = record.upstreams.at(-1)
    if (last?.time !== undefined) route.upstreamTimes.push(last.time)
    if (record.cache !== undefined) {
      route.cached += 1
      if (CACHE_HITS.has(record.cache)) route.row.cacheHits = (route.row.cacheHits ?? 0) + 1
      else route.row.cacheHits ??= 0
    }

    for (const attempt of record.upstreams) {
      let upstream = upstreams.get(attempt.addr)
      if (!upstream) {
        const row: UpstreamRow = {
          addr: attempt.addr,
          service: record.service,
          requests: 0,
          rate: 0,
          status: emptyStatus(),
          latency: latencyMs([]),
        }
        const replica = options.replicas?.get(attempt.addr)
        if (replica) row.replica = replica
        upstream = {row, times: []}
        upstreams.set(attempt.addr, upstream)
      }

      upstream.row.requests += 1
      if (attempt.status !== undefined) countStatus(upstream.row.status, attempt.status, options.rateLimitStatus)
      if (attempt.time !== undefined) upstream.times.push(attempt.time)
    }

    if (record.client !== '') clients.set(record.client, (clients.get(record.client) ?? 0) + 1)
  }

  const routeRows = [...routes.values()].map(({row, times, upstreamTimes, cached}) => ({
    ...row,
    rate: round(row.requests / seconds),
    latency: latencyMs(times),
    upstreamLatency: latencyMs(upstreamTimes),
    cacheHitRatio: row.cacheHits === null || cached === 0 ? null : round(row.cacheHits / cached, 3),
  }))
  // Manifest order first (the order users wrote), then unrouted requests.
  routeRows.sort((a, b) => (a.path === '' ? 1 : 0) - (b.path === '' ? 1 : 0))

  const upstreamRows = [...upstreams.values()]
    .map(({row, times}) => ({...row, rate: round(row.requests / seconds), latency: latencyMs(times)}))
    .sort((a, b) => a.service.localeCompare(b.service) || (a.replica ?? a.addr).localeCompare(b.replica ?? b.addr))

  const clientRows = [...clients.entries()]
    .map(([addr, requests]) => ({addr, requests}))
    .sort((a, b) => b.requests - a.requests || a.addr.localeCompare(b.addr))
    .slice(0, options.topClients ?? 10)

  return {
    window: {
      seconds,
      from: new Date(options.now - options.windowMs).toISOString(),
      to: new Date(options.now).toISOString(),
    },
    requests: inside.length,
    routes: routeRows,
    upstreams: upstreamRows,
    clients: clientRows,
  }
}
