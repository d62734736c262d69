import {describe, expect, it} from 'vitest'

import {describeStatus} from '../../src/docker/describe.js'
import {describeSwarmStatus, type SwarmStatus} from '../../src/swarm/status.js'
import {renderPanels} from '../../src/top/panels.js'
import type {Snapshot} from '../../src/top/snapshot.js'
import {formatTable} from '../../src/util/table.js'
import {renderTable} from '../../src/verify/report.js'
import type {VerifyReport} from '../../src/verify/types.js'
import type {StatusRow} from '../../src/docker/status.js'

// The four tables the CLI prints (status, swarm status, top, verify), byte for byte as they were
// before they shared src/util/table.ts: one formatter must not move a column by a space.

const latency = (p50: number | null, p95: number | null, p99: number | null) => ({p50, p95, p99})
const status = (a: number, b: number, c: number, d: number, e: number) => ({
  '2xx': a,
  '3xx': b,
  '4xx': c,
  '5xx': d,
  rateLimited: e,
})
const statusRows: StatusRow[] = [
  {
    service: 'gateway',
    name: 'demo-gateway-1',
    number: 1,
    state: 'running',
    health: 'healthy',
    ports: ['127.0.0.1:8080->80/tcp', '127.0.0.1:8443->443/tcp'],
    image: 'nginx:1.30',
  },
  {service: 'web', name: 'demo-web-1', number: 1, state: 'running', health: 'starting', ports: [], image: 'demo-web'},
  {
    service: 'web',
    name: 'demo-web-12',
    number: 12,
    state: 'exited',
    health: 'none',
    ports: [],
    image: 'demo-web:a-much-longer-tag',
  },
]
const statusRowsUpstream = statusRows.map((row, index) => ({...row, inUpstream: index === 0 ? undefined : index === 1}))
const swarm: SwarmStatus = {
  namespace: 'demo',
  endpoint: 'unix:///var/run/docker.sock',
  services: [{service: 'web', desired: 2, running: 1, pending: {starting: 1}}],
  tasks: [
    {service: 'web', task: 'demo_web.1', node: 'node-a', state: 'running'},
    {service: 'web', task: 'demo_web.2', node: 'a-longer-node-name', state: 'starting', error: 'no suitable node'},
  ],
}
const snapshot: Snapshot = {
  window: {seconds: 60, from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:01:00Z'},
  requests: 1234,
  routes: [
    {
      path: '/',
      service: 'web',
      requests: 1200,
      rate: 20,
      status: status(1100, 0, 50, 2, 48),
      latency: latency(3, 12, 120),
      upstreamLatency: latency(2, 10, 118),
      cacheHits: null,
      cacheHitRatio: null,
    },
    {
      path: '/api/',
      service: 'web',
      requests: 30,
      rate: 0.5,
      status: status(30, 0, 0, 0, 0),
      latency: latency(1, 2, 2),
      upstreamLatency: latency(null, null, null),
      cacheHits: 20,
      cacheHitRatio: 0.6667,
    },
    {
      path: '',
      service: '',
      requests: 4,
      rate: 0.0667,
      status: status(0, 0, 4, 0, 0),
      latency: latency(0, 0, 0),
      upstreamLatency: latency(null, null, null),
      cacheHits: null,
      cacheHitRatio: null,
    },
  ],
  upstreams: [
    {
      addr: '172.18.0.5:8000',
      replica: 'demo-web-1',
      service: 'web',
      requests: 700,
      rate: 11.67,
      status: status(700, 0, 0, 0, 0),
      latency: latency(2, 9, 100),
    },
    {
      addr: '172.18.0.6:8000',
      service: 'web',
      requests: 500,
      rate: 8.33,
      status: status(400, 0, 50, 2, 48),
      latency: latency(2, 11, 130),
    },
  ],
  clients: [
    {addr: '127.0.0.1', requests: 1200},
    {addr: '2001:db8::1', requests: 34},
  ],
}
const emptySnapshot: Snapshot = {...snapshot, routes: [], upstreams: [], clients: []}
const report: VerifyReport = {
  ok: false,
  project: 'demo',
  runId: 'r1',
  durationMs: 12345,
  checks: [
    {id: 'containers', title: 'Containers', ok: true, detail: '3 running, healthy', ms: 12},
    {id: 'tls', title: 'TLS', ok: true, warn: true, detail: 'certificate expires in 10 days', ms: 1500},
    {id: 'cache', title: 'Cache', ok: true, skipped: true, detail: '', ms: 0},
    {
      id: 'rate-limit',
      title: 'Rate limit',
      ok: false,
      detail:
        'sent 60 requests in one second and every one of them came back 200, none 503: the limit zone is not applied to the route that was tried, or the burst is larger than the test\nnginx -T:\n  limit_req zone=per_ip burst=20 nodelay;',
      ms: 10234,
    },
  ],
}

describe('formatTable', () => {
  it('pads each column to its widest cell, two spaces apart, right-aligned where asked, no trailing spaces', () => {
    expect(
      formatTable(
        ['name', 'n', 'note'],
        [
          ['a', 10, 'x'],
          ['bbb', 2, ''],
        ],
        ['left', 'right'],
      ),
    ).toEqual(['name   n  note', 'a     10  x', 'bbb    2'])
  })
})

describe('the tables the CLI prints', () => {
  it('status, with and without the UPSTREAM column', () => {
    expect(describeStatus('demo', statusRows)).toBe(
      [
        'SERVICE  NAME            STATE    HEALTH    PORTS                                            IMAGE',
        'gateway  demo-gateway-1  running  healthy   127.0.0.1:8080->80/tcp, 127.0.0.1:8443->443/tcp  nginx:1.30',
        'web      demo-web-1      running  starting  -                                                demo-web',
        'web      demo-web-12     exited   none      -                                                demo-web:a-much-longer-tag',
      ].join('\n'),
    )
    expect(describeStatus('demo', statusRowsUpstream)).toBe(
      [
        'SERVICE  NAME            STATE    HEALTH    UPSTREAM  PORTS                                            IMAGE',
        'gateway  demo-gateway-1  running  healthy   -         127.0.0.1:8080->80/tcp, 127.0.0.1:8443->443/tcp  nginx:1.30',
        'web      demo-web-1      running  starting  yes       -                                                demo-web',
        'web      demo-web-12     exited   none      no        -                                                demo-web:a-much-longer-tag',
      ].join('\n'),
    )
  })

  it('status on a swarm', () => {
    expect(describeSwarmStatus(swarm)).toBe(
      [
        'Stack demo on the swarm at unix:///var/run/docker.sock:',
        '  web: 1/2 running',
        '',
        'TASK        NODE                STATE     ERROR',
        'demo_web.1  node-a              running',
        'demo_web.2  a-longer-node-name  starting  no suitable node',
      ].join('\n'),
    )
  })

  it('top, with rows and with an empty window', () => {
    expect(renderPanels(snapshot, {source: 'gateway stdout', rateLimitStatus: 503})).toBe(
      [
        'create-gateway top: 1234 requests in the last 60 s, to 2026-01-01T00:01:00Z from gateway stdout',
        'latencies in ms: request_time p50/p95/p99, then upstream_response_time (limited = HTTP 503)',
        '',
        'ROUTES',
        'route       service   req  req/s   2xx  3xx  4xx  5xx  limited  p50  p95  p99  up50  up95  up99  cache hit',
        '/           web      1200  20.00  1100    0   50    2       48    3   12  120     2    10   118          -',
        '/api/       web        30   0.50    30    0    0    0        0    1    2    2     -     -     -        67%',
        '(no route)  -           4   0.07     0    0    4    0        0    0    0    0     -     -     -          -',
        '',
        'UPSTREAM REPLICAS',
        'replica     address          service  req  req/s  2xx  3xx  4xx  5xx  limited  p50  p95  p99',
        'demo-web-1  172.18.0.5:8000  web      700  11.67  700    0    0    0        0    2    9  100',
        '-           172.18.0.6:8000  web      500   8.33  400    0   50    2       48    2   11  130',
        '',
        'BUSIEST CLIENTS',
        'client        req',
        '127.0.0.1    1200',
        '2001:db8::1    34',
      ].join('\n'),
    )
    expect(renderPanels(emptySnapshot)).toBe(
      [
        'create-gateway top: 1234 requests in the last 60 s, to 2026-01-01T00:01:00Z',
        'latencies in ms: request_time p50/p95/p99, then upstream_response_time',
        '',
        'ROUTES',
        'route  service  req  req/s  2xx  3xx  4xx  5xx  limited  p50  p95  p99  up50  up95  up99  cache hit',
        '',
        'UPSTREAM REPLICAS',
        '(none in the window)',
        '',
        'BUSIEST CLIENTS',
        '(none in the window)',
      ].join('\n'),
    )
  })

  it('verify, at the default width and wrapped to 80 columns', () => {
    expect(renderTable(report)).toBe(
      [
        'check       result  detail                                                                                          time',
        'containers  pass    3 running, healthy                                                                             12 ms',
        'tls         warn    certificate expires in 10 days                                                                 1.5 s',
        'cache       skip                                                                                                    0 ms',
        'rate-limit  FAIL    sent 60 requests in one second and every one of them came back 200, none 503: the limit zone  10.2 s',
        '                    is not applied to the route that was tried, or the burst is larger than the test',
        '                    nginx -T:',
        '                      limit_req zone=per_ip burst=20 nodelay;',
        '',
        '2 passed (1 with warnings), 1 skipped, 1 failed in 12.3 s',
      ].join('\n'),
    )
    expect(renderTable(report, {width: 80})).toBe(
      [
        'check       result  detail                                                  time',
        'containers  pass    3 running, healthy                                     12 ms',
        'tls         warn    certificate expires in 10 days                         1.5 s',
        'cache       skip                                                            0 ms',
        'rate-limit  FAIL    sent 60 requests in one second and every one of them  10.2 s',
        '                    came back 200, none 503: the limit zone is not',
        '                    applied to the route that was tried, or the burst is',
        '                    larger than the test',
        '                    nginx -T:',
        '                      limit_req zone=per_ip burst=20 nodelay;',
        '',
        '2 passed (1 with warnings), 1 skipped, 1 failed in 12.3 s',
      ].join('\n'),
    )
  })
})
