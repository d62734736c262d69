import {describe, expect, it} from 'vitest'

import {parseManifest} from '../../src/manifest/load.js'
import {countStatuses, judgeLoadTest} from '../../src/verify/checks/rate-limit.js'
import {
  drainMs,
  expectedAcceptedRange,
  loadTestAmount,
  pickLoadTestRoute,
  ratePerSecond,
  routeLimit,
  toleranceFor,
} from '../../src/verify/rate.js'

const manifest = (routes: unknown[], extra: Record<string, unknown> = {}) =>
  parseManifest({
    version: 1,
    name: 'demo',
    domain: 'api.localhost',
    services: {web: {kind: 'django', replicas: 2}, payment: {kind: 'external', url: 'http://payment.internal'}},
    routes,
    ...extra,
  })

/**
 * NGINX's limit_req (ngx_http_limit_req_lookup) for one key, with nodelay: excess in milli-requests,
 * rate in milli-requests per second, `last` moved only by accepted requests.
 */
function simulateNginx(arrivalsMs: number[], ratePerSec: number, burst: number): number {
  const rate = Math.floor(ratePerSec * 1000)
  let excess = 0
  let last: number | undefined
  let accepted = 0
  for (const now of arrivalsMs.map(Math.floor)) {
    if (last === undefined) {
      last = now
      excess = 0
      accepted += 1
      continue
    }

    const ms = Math.max(0, now - last)
    let next = excess - Math.floor((rate * ms) / 1000) + 1000
    if (next < 0) next = 0
    if (next > burst * 1000) continue
    excess = next
    if (ms) last = now
    accepted += 1
  }

  return accepted
}

describe('rate arithmetic', () => {
  it('reads NGINX rates per second and per minute', () => {
    expect(ratePerSecond('10r/s')).toBe(10)
    expect(ratePerSecond('600r/m')).toBe(10)
    expect(ratePerSecond('30r/m')).toBe(0.5)
    expect(() => ratePerSecond('10/s')).toThrow(/not an NGINX rate/)
  })

  it('expects burst + 1 + rate x window, with a tolerance', () => {
    expect(toleranceFor(10)).toBe(3)
    expect(expectedAcceptedRange({rate: 10, burst: 20}, 0, 100)).toEqual({min: 18, max: 24, tolerance: 3})
    // 250 ms at 10 r/s: 2.5 more tokens -> floor 2, ceil 3.
    expect(expectedAcceptedRange({rate: 10, burst: 20}, 250, 100)).toEqual({min: 20, max: 27, tolerance: 3})
    expect(expectedAcceptedRange({rate: 10, burst: 20}, 250, 100, 0)).toEqual({min: 23, max: 24, tolerance: 0})
  })

  it('clamps the range to the number of requests sent', () => {
    expect(expectedAcceptedRange({rate: 10, burst: 200}, 1000, 100)).toEqual({min: 100, max: 100, tolerance: 3})
    expect(expectedAcceptedRange({rate: 1, burst: 0}, 0, 100, 5).min).toBe(0)
  })

  it('agrees with a simulation of NGINX for bursts of load at several speeds', () => {
    for (const [rate, burst] of [
      [10, 20],
      [5, 10],
      [100, 50],
      [1, 0],
    ] as const) {
      for (const spacingMs of [0.5, 2, 7, 30]) {
        const amount = 100
        const arrivals = Array.from({length: amount}, (_, index) => 1000 + index * spacingMs)
        const accepted = simulateNginx(arrivals, rate, burst)
        const range = expectedAcceptedRange({rate, burst}, arrivals.at(-1)! - arrivals[0]!, amount)
        // Only meaningful while the load outpaces the rate (the check's own load test does).
        if (1000 / spacingMs <= rate) continue
        expect(accepted, `rate ${rate} burst ${burst} spacing ${spacingMs}`).toBeGreaterThanOrEqual(range.min)
        expect(accepted, `rate ${rate} burst ${burst} spacing ${spacingMs}`).toBeLessThanOrEqual(range.max)
      }
    }
  })

  it('waits for a full bucket to drain', () => {
    expect(drainMs({rate: 10, burst: 20})).toBe(2600)
    expect(drainMs({rate: 0.5, burst: 1}, 0)).toBe(4000)
  })

  it("sends more than the seed's 100 requests only when the burst would take most of them", () => {
    expect(loadTestAmount({rate: 10, burst: 20})).toBe(100)
    expect(loadTestAmount({rate: 10, burst: 100})).toBe(303)
    expect(loadTestAmount({rate: 10, burst: 5000})).toBe(2000)
  })
})

describe('load-test route', () => {
  it('prefers a Django route without auth', () => {
    const m = manifest([
      {path: '/payment/', service: 'payment'},
      {path: '/secure/', service: 'web', auth: 'basic'},
      {path: '/open/', service: 'web'},
    ])
    expect(pickLoadTestRoute(m).path).toBe('/open/')
  })

  it('falls back to a protected Django route, then to anything', () => {
    expect(
      pickLoadTestRoute(
        manifest([
          {path: '/payment/', service: 'payment'},
          {path: '/secure/', service: 'web', auth: 'basic'},
        ]),
      ).path,
    ).toBe('/secure/')
  })

  it("uses the route's own limit when it has one", () => {
    const m = manifest(
      [
        {path: '/', service: 'web', rateLimit: {rate: '5r/s', burst: 3}},
        {path: '/b/', service: 'web'},
      ],
      {rateLimit: {rate: '600r/m', burst: 7}},
    )
    expect(routeLimit(m, m.routes[0]!)).toEqual({rate: 5, burst: 3})
    expect(routeLimit(m, m.routes[1]!)).toEqual({rate: 10, burst: 7})
  })
})

describe('load-test verdict', () => {
  const range = {min: 19, max: 26, tolerance: 3}

  it('counts 2xx as accepted and only the configured status as rejected', () => {
    expect(countStatuses({'200': {count: 20}, '204': {count: 1}, '503': {count: 78}, '502': {count: 1}}, 503)).toEqual({
      accepted: 21,
      rejected: 78,
      other: {'502': 1},
    })
    expect(countStatuses({'429': {count: 5}, '503': {count: 2}}, 429)).toEqual({
      accepted: 0,
      rejected: 5,
      other: {'503': 2},
    })
  })

  it('passes an accepted count inside the range', () => {
    expect(
      judgeLoadTest({amount: 100, accepted: 22, rejected: 78, other: {}, errors: 0, timeouts: 0}, range, 503),
    ).toEqual({ok: true, warn: false, problems: []})
  })

  it('fails when everything passes (no limit) and says so', () => {
    const verdict = judgeLoadTest(
      {amount: 100, accepted: 100, rejected: 0, other: {}, errors: 0, timeouts: 0},
      range,
      503,
    )
    expect(verdict.ok).toBe(false)
    expect(verdict.problems[0]).toMatch(/100 accepted, outside the 19-26 .* no 503 at all/)
  })

  it('fails on other statuses and on requests without an answer', () => {
    const verdict = judgeLoadTest(
      {amount: 100, accepted: 22, rejected: 70, other: {'429': 8}, errors: 2, timeouts: 1},
      range,
      503,
    )
    expect(verdict.ok).toBe(false)
    expect(verdict.problems).toEqual(['unexpected answers: 8x 429', '2 requests failed without an answer (1 timeouts)'])
  })

  it('warns when the amount could not exceed the limit', () => {
    expect(
      judgeLoadTest(
        {amount: 100, accepted: 100, rejected: 0, other: {}, errors: 0, timeouts: 0},
        {min: 100, max: 100, tolerance: 3},
        503,
      ),
    ).toEqual({ok: true, warn: true, problems: []})
  })
})

describe('load-test verdict without a gateway', () => {
  it('says nothing answered instead of judging the range', () => {
    expect(
      judgeLoadTest(
        {amount: 100, accepted: 0, rejected: 0, other: {}, errors: 100, timeouts: 0},
        {min: 19, max: 26, tolerance: 3},
        503,
      ),
    ).toEqual({
      ok: false,
      problems: ['none of 100 requests got an answer (100 errors, 0 timeouts): is the gateway up?'],
    })
  })

  it('does not blame limit_req for too few accepted', () => {
    expect(
      judgeLoadTest(
        {amount: 100, accepted: 5, rejected: 95, other: {}, errors: 0, timeouts: 0},
        {min: 19, max: 26, tolerance: 3},
        503,
      ).problems,
    ).toEqual(['5 accepted, outside the 19-26 the limit allows'])
  })
})
