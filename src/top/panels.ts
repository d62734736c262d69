import type {Latency, StatusCounts} from './stats.js'
import type {Snapshot} from './snapshot.js'

/** The terminal view: one table per panel, built from the same Snapshot as the JSON. */

type Cell = string | number
type Align = 'left' | 'right'

export function table(header: readonly string[], rows: readonly Cell[][], align: readonly Align[]): string[] {
  const text = rows.map((row) => row.map(String))
  const widths = header.map((name, index) => Math.max(name.length, ...text.map((row) => (row[index] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, index) =>
        align[index] === 'right' ? cell.padStart(widths[index] ?? 0) : cell.padEnd(widths[index] ?? 0),
      )
      .join('  ')
      .trimEnd()
  return [line(header), ...text.map(line)]
}

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
    ...table(
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
      : table(
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
      : table(
          ['client', 'req'],
          snapshot.clients.map((client) => [client.addr, client.requests]),
          ['left', 'right'],
        )),
  ]
  return out.join('\n')
}
