import type {Latency, StatusCounts} from './stats.js'
import type {Snapshot} from './snapshot.js'
import {formatTable, type Align} from '../util/table.js'

/** The terminal view: one table per panel, built from the same Snapshot as the JSON. */

function ms(value: number | null): string {
  return value === null ? '-' : `${value}`
}

function latencyCells(latency: Latency): string[] {
  return [ms(latency.p50), ms(latency.p95), ms(latency.p99)]
}

function statusCells(status: StatusCounts): number[] {
  return [status['2xx'], status['3xx'], status['4xx'], status['5xx'], status.rateLimited]
}

const STATUS_HEADER = ['2xx', '3xx', '4xx', '5xx', 'limited']

export function renderPanels(snapshot: Snapshot, options: {source?: string; rateLimitStatus?: number} = {}): string {
  const limited = options.rateLimitStatus === undefined ? '' : ` (limited = HTTP ${options.rateLimitStatus})`
  const out = [
    `create-gateway top: ${snapshot.requests} requests in the last ${snapshot.window.seconds} s, to ${snapshot.window.to}${options.source ? ` from ${options.source}` : ''}`,
    `latencies in ms: request_time p50/p95/p99, then upstream_response_time${limited}`,
    '',
    'ROUTES',
    ...formatTable(
      ['route', 'service', 'req', 'req/s', ...STATUS_HEADER, 'p50', 'p95', 'p99', 'up50', 'up95', 'up99', 'cache hit'],
      snapshot.routes.map((route) => [
        route.path === '' ? '(no route)' : route.path,
        route.service || '-',
        route.requests,
        route.rate.toFixed(2),
        ...statusCells(route.status),
        ...latencyCells(route.latency),
        ...latencyCells(route.upstreamLatency),
        route.cacheHitRatio === null ? '-' : `${Math.round(route.cacheHitRatio * 100)}%`,
      ]),
      ['left', 'left', ...Array<Align>(15).fill('right')],
    ),
    '',
    'UPSTREAM REPLICAS',
    ...(snapshot.upstreams.length === 0
      ? ['(none in the window)']
      : formatTable(
          ['replica', 'address', 'service', 'req', 'req/s', ...STATUS_HEADER, 'p50', 'p95', 'p99'],
          snapshot.upstreams.map((upstream) => [
            upstream.replica ?? '-',
            upstream.addr,
            upstream.service || '-',
            upstream.requests,
            upstream.rate.toFixed(2),
            ...statusCells(upstream.status),
            ...latencyCells(upstream.latency),
          ]),
          ['left', 'left', 'left', ...Array<Align>(10).fill('right')],
        )),
    '',
    'BUSIEST CLIENTS',
    ...(snapshot.clients.length === 0
      ? ['(none in the window)']
      : formatTable(
          ['client', 'req'],
          snapshot.clients.map((client) => [client.addr, client.requests]),
          ['left', 'right'],
        )),
  ]
  return out.join('\n')
}
