import {PassThrough} from 'node:stream'

import {describe, expect, it} from 'vitest'

import type {LogOptions} from '../../src/docker/engine.js'
import type {LogEngine} from '../../src/docker/gateway-log.js'
import {LABELS} from '../../src/docker/spec.js'

import {renderPanels} from '../../src/top/panels.js'
import {parseAccessLine, parseUpstreams} from '../../src/top/record.js'
import {runLive, TopSession} from '../../src/top/session.js'
import {buildSnapshot} from '../../src/top/snapshot.js'
import {DEFAULT_MAX_LINES, GatewayAccessLog, type AccessLogSource} from '../../src/top/source.js'
import {latencyMs, parseWindow, percentile} from '../../src/top/stats.js'
import {frame, logStream, runningContainer, type FakeLogEntry} from '../helpers/fake-engine.js'

const NOW = Date.parse('2026-12-04T10:01:00Z')

/** An access-log line as log_format gateway_json writes it. */
function line(fields: {
  second?: number
  route?: string
  service?: string
  status?: number
  time?: number
  upstream?: string
  upstreamStatus?: string
  upstreamTime?: string
  client?: string
  cache?: string
  uri?: string
}): string {
  const at = new Date(NOW - (fields.second ?? 0) * 1000).toISOString().replace('.000Z', '+00:00')
  return JSON.stringify({
    time: at,
    request_id: 'x',
    remote_addr: fields.client ?? '172.18.0.1',
    method: 'GET',
    uri: fields.uri ?? fields.route ?? '/',
    status: fields.status ?? 200,
    bytes: 10,
    request_time: fields.time ?? 0.001,
    upstream_addr: fields.upstream ?? '',
    upstream_status: fields.upstreamStatus ?? '',
    upstream_response_time: fields.upstreamTime ?? '',
    host: 'api.localhost',
    user_agent: 'test',
    route: fields.route ?? '',
    service: fields.service ?? '',
    ...(fields.cache === undefined ? {} : {cache: fields.cache}),
  })
}

describe('percentiles', () => {
  it('takes the nearest rank, always a value that occurred', () => {
    const hundred = Array.from({length: 100}, (_, index) => index + 1)
    expect([50, 95, 99, 100].map((p) => percentile(hundred, p))).toEqual([50, 95, 99, 100])
    expect(percentile([1, 2, 3, 4], 50)).toBe(2)
    expect(percentile([7], 99)).toBe(7)
    expect(percentile([], 50)).toBeNull()
  })

  it('turns NGINX seconds into sorted milliseconds', () => {
    expect(latencyMs([0.3, 0.001, 0.02, 0.004])).toEqual({p50: 4, p95: 300, p99: 300})
  })
})

describe('parsing a line', () => {
  it('splits retried and redirected upstream attempts position by position', () => {
    expect(parseUpstreams('10.0.0.2:8000, 10.0.0.3:8000', '502, 200', '0.003, 0.010')).toEqual([
      {addr: '10.0.0.2:8000', status: 502, time: 0.003},
      {addr: '10.0.0.3:8000', status: 200, time: 0.01},
    ])
    expect(parseUpstreams('127.0.0.1:9000 : 10.0.0.2:8000', '200 : 201', '- : 0.002')).toEqual([
      {addr: '127.0.0.1:9000', status: 200},
      {addr: '10.0.0.2:8000', status: 201, time: 0.002},
    ])
    expect(parseUpstreams('', '', '')).toEqual([])
    expect(parseUpstreams('-', '-', '-')).toEqual([])
  })

  it('reads the fields top needs and refuses what is not a record', () => {
    const record = parseAccessLine(
      line({
        route: '/api/',
        service: 'web',
        status: 201,
        time: 0.012,
        upstream: '10.0.0.2:8000',
        upstreamStatus: '201',
        upstreamTime: '0.011',
        cache: 'HIT',
      }),
    )
    expect(record).toEqual({
      time: NOW,
      route: '/api/',
      service: 'web',
      uri: '/api/',
      status: 201,
      requestTime: 0.012,
      upstreams: [{addr: '10.0.0.2:8000', status: 201, time: 0.011}],
      client: '172.18.0.1',
      cache: 'HIT',
    })
    expect(parseAccessLine('not json')).toBeUndefined()
    expect(parseAccessLine('{"time":"2026-12-04T10:00:00+00:00","status":2')).toBeUndefined()
    expect(parseAccessLine('{"time":"yesterday","status":200}')).toBeUndefined()
    expect(parseAccessLine('[1]')).toBeUndefined()
  })
})

describe('the snapshot', () => {
  const lines = [
    // /api/ (web): 8 answers from two replicas, 1 rate-limited, 1 refused by auth; 20 ms apart.
    ...Array.from({length: 8}, (_, index) =>
      line({
        second: index,
        route: '/api/',
        service: 'web',
        time: (index + 1) / 100,
        upstream: index % 2 === 0 ? '10.0.0.2:8000' : '10.0.0.3:8000',
        upstreamStatus: '200',
        upstreamTime: String((index + 1) / 100 - 0.001),
        client: index < 6 ? '172.18.0.1' : '172.18.0.9',
      }),
    ),
    line({second: 8, route: '/api/', service: 'web', status: 503, time: 0, client: '172.18.0.9'}),
    line({second: 9, route: '/api/', service: 'web', status: 401, time: 0.09, client: '172.18.0.7'}),
    // No route matched.
    line({second: 3, status: 404, client: '172.18.0.7'}),
    // A refusal of /admin/ answered from the shared 401 location: the line has no route, its URI does.
    line({second: 4, uri: '/admin/login', status: 401, client: '172.18.0.7'}),
    // Outside the window (61 s old, and one second in the future).
    line({second: 61, route: '/api/', service: 'web'}),
    line({second: -1, route: '/api/', service: 'web'}),
    'a line NGINX did not write',
  ]
  const records = lines.map(parseAccessLine).filter((record) => record !== undefined)
  const snapshot = buildSnapshot(records, {
    windowMs: 60_000,
    now: NOW,
    rateLimitStatus: 503,
    routes: [
      {path: '/api/', service: 'web'},
      {path: '/admin/', service: 'admin'},
    ],
  })

  it('counts each route in the window, in manifest order, unrouted last', () => {
    expect(snapshot.window).toEqual({seconds: 60, from: '2026-12-04T10:00:00.000Z', to: '2026-12-04T10:01:00.000Z'})
    expect(snapshot.requests).toBe(12)
    expect(snapshot.routes.map((route) => [route.path, route.service, route.requests])).toEqual([
      ['/api/', 'web', 10],
      ['/admin/', 'admin', 1],
      ['', '', 1],
    ])
    const api = snapshot.routes[0]!
    expect(api.rate).toBe(0.17)
    expect(api.status).toEqual({'2xx': 8, '3xx': 0, '4xx': 1, '5xx': 1, rateLimited: 1})
    // request_time in ms: 0, 10, 20, ..., 80, 90 -> nearest rank of 10 values.
    expect(api.latency).toEqual({p50: 40, p95: 90, p99: 90})
    // Only the 8 proxied requests have an upstream time: 9, 19, ..., 79 ms.
    expect(api.upstreamLatency).toEqual({p50: 39, p95: 79, p99: 79})
    expect(api.cacheHits).toBeNull()
    expect(snapshot.routes[1]!.status['4xx']).toBe(1)
    expect(snapshot.routes[1]!.upstreamLatency).toEqual({p50: null, p95: null, p99: null})
  })

  it('counts each upstream replica by its attempts', () => {
    expect(
      snapshot.upstreams.map((upstream) => [upstream.addr, upstream.service, upstream.requests, upstream.latency]),
    ).toEqual([
      ['10.0.0.2:8000', 'web', 4, {p50: 29, p95: 69, p99: 69}],
      ['10.0.0.3:8000', 'web', 4, {p50: 39, p95: 79, p99: 79}],
    ])
    expect(snapshot.upstreams[0]!.status['2xx']).toBe(4)
  })

  it('ranks the busiest clients', () => {
    expect(snapshot.clients).toEqual([
      {addr: '172.18.0.1', requests: 6},
      {addr: '172.18.0.7', requests: 3},
      {addr: '172.18.0.9', requests: 3},
    ])
  })

  it('reports the cache hit ratio when the log carries a cache status', () => {
    const cached = ['HIT', 'MISS', 'HIT', 'STALE', 'BYPASS'].map((cache) =>
      parseAccessLine(line({route: '/c/', service: 'web', cache}))!,
    )
    const [row] = buildSnapshot(cached, {windowMs: 60_000, now: NOW, rateLimitStatus: 503}).routes
    expect(row).toMatchObject({requests: 5, cacheHits: 3, cacheHitRatio: 0.6})
  })

  it('renders the same numbers as panels', () => {
    const text = renderPanels(snapshot, {source: 'gateway stdout', rateLimitStatus: 503})
    expect(text).toContain('12 requests in the last 60 s')
    expect(text).toMatch(/^\/api\/\s+web\s+10\s+0\.17\s+8\s+0\s+1\s+1\s+1\s+40\s+90\s+90\s+39\s+79\s+79\s+-$/m)
    expect(text).toMatch(/^\(no route\)\s+-\s+1\s/m)
    expect(text).toMatch(/^172\.18\.0\.1\s+6$/m)
  })
})

describe('window flag', () => {
  it('takes s, m, h or bare seconds', () => {
    expect(['60s', '5m', '1h', '30', '500ms'].map(parseWindow)).toEqual([60_000, 300_000, 3_600_000, 30_000, 500])
    expect(['', '0s', 'soon', '-5s'].map(parseWindow)).toEqual([undefined, undefined, undefined, undefined])
  })
})

describe("reading the gateway's stdout through the engine", () => {
  /** The gateway's log: entries, and the follow streams opened on it (a follow stays open until ended). */
  function gatewayLog() {
    const entries: FakeLogEntry[] = []
    const follows: PassThrough[] = []
    const requests: LogOptions[] = []
    let gateways = 1
    const engine: LogEngine = {
      containers: async () =>
        Array.from({length: gateways}, () =>
          runningContainer({
            name: 'demo-gateway-1',
            id: 'gw',
            labels: {[LABELS.project]: 'demo', [LABELS.service]: 'gateway'},
          }),
        ),
      containerLogs: async (_id, options) => {
        requests.push(options)
        if (!options.follow) return logStream(entries, options)
        const stream = new PassThrough()
        logStream(entries, options).pipe(stream, {end: false})
        follows.push(stream)
        return stream
      },
    }
    let second = 0
    const write = (stream: FakeLogEntry['stream'], text: string, time?: string) => {
      const entry = {stream, text, time: time ?? `2030-01-01T10:00:${String(second++).padStart(2, '0')}.5Z`}
      entries.push(entry)
      for (const follow of follows)
        if (!follow.destroyed) follow.write(frame(stream === 'stdout' ? 1 : 2, `${entry.time} ${text}\n`))
    }

    return {engine, write, follows, requests, setGateways: (count: number) => (gateways = count)}
  }

  const settle = () => new Promise((resolve) => setTimeout(resolve, 20))

  it('starts with the newest lines, then takes only new ones from one follow stream; stdout JSON only', async () => {
    const log = gatewayLog()
    log.write('stdout', '/docker-entrypoint.sh: Configuration complete; ready for start up')
    log.write('stdout', '{"n":1}')
    log.write('stderr', '2030/01/01 10:00:02 [notice] 1#1: start worker process 30')
    log.write('stdout', '{"n":2}', '2030-01-01T10:00:02.5Z')
    const source = new GatewayAccessLog(log.engine, 'demo')
    expect(await source.next()).toEqual(['{"n":1}', '{"n":2}'])
    expect(log.requests[0]).toMatchObject({tail: DEFAULT_MAX_LINES, timestamps: true})
    // Written in the same second as the last line read: the follow (from that whole second) must
    // not repeat {"n":2}, and must keep {"n":3}.
    log.write('stdout', '{"n":3}', '2030-01-01T10:00:02.5Z')
    expect(await source.next()).toEqual([])
    await settle()
    expect(await source.next()).toEqual(['{"n":3}'])
    log.write('stdout', '{"n":4}')
    log.write('stderr', '2030/01/01 10:00:05 [error] 31#31: *1 connect() failed')
    await settle()
    expect(await source.next()).toEqual(['{"n":4}'])
    expect(await source.next()).toEqual([])
    expect(log.follows).toHaveLength(1)
    expect(log.requests[1]).toMatchObject({follow: true, since: Date.parse('2030-01-01T10:00:02Z') / 1000})
    source.close()
    expect(log.follows[0]!.destroyed).toBe(true)
  })

  it('is empty before there is a gateway, and opens a new follow from its mark when one ends', async () => {
    const log = gatewayLog()
    log.setGateways(0)
    const source = new GatewayAccessLog(log.engine, 'demo')
    expect(await source.next()).toEqual([])
    log.setGateways(1)
    log.write('stdout', '{"n":1}')
    expect(await source.next()).toEqual(['{"n":1}'])
    await source.next()
    await settle()
    // The gateway was recreated: its stream ended.
    log.follows[0]!.end()
    await settle()
    log.write('stdout', '{"n":2}')
    await source.next()
    await settle()
    expect(await source.next()).toEqual(['{"n":2}'])
    expect(log.follows).toHaveLength(2)
    source.close()
  })

  it('reads at most maxLines at first', async () => {
    const log = gatewayLog()
    for (const n of [1, 2, 3]) log.write('stdout', `{"n":${n}}`)
    expect(await new GatewayAccessLog(log.engine, 'demo', 2).next()).toEqual(['{"n":2}', '{"n":3}'])
  })
})

describe('the live view', () => {
  it('refreshes once per interval with the new lines until stopped, and forgets what left the window', async () => {
    const batches = [
      [line({second: 0, route: '/api/', service: 'web'})],
      [line({second: -2, route: '/api/', service: 'web'})],
      [],
    ]
    const source: AccessLogSource = {description: 'fake', next: async () => batches.shift() ?? []}
    let now = NOW
    const controller = new AbortController()
    const seen: number[] = []
    const session = new TopSession(source, {windowMs: 3000, rateLimitStatus: 503})
    await runLive(session, {
      clock: {now: () => now, sleep: async (ms) => void (now += ms)},
      intervalMs: 1000,
      signal: controller.signal,
      show: (snapshot) => {
        seen.push(snapshot.requests)
        if (seen.length === 4) controller.abort()
      },
    })
    // Window (now - 3 s, now]. t=0: 1; t=1: t=0 (t=2 read but not yet due); t=2: both; t=3: t=0 has left.
    expect(seen).toEqual([1, 1, 2, 1])
  })
})
