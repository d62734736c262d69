import autocannon from 'autocannon'

import {urlHost} from '../../manifest/model.js'
import {credentialHeaders, hostHeader} from '../http.js'
import {
  drainMs,
  expectedAcceptedRange,
  loadTestAmount,
  pickLoadTestRoute,
  routeLimit,
  type ExpectedRange,
} from '../rate.js'
import {fail, pass, type Check, type CheckOutcome} from '../types.js'
import {probePath} from './routes.js'

/** The seed's `ab -n 100 -c 20`. */
export const LOAD_CONNECTIONS = 20
const LOAD_TIMEOUT_SECONDS = 10

export interface LoadTestCounts {
  amount: number
  accepted: number
  rejected: number
  /** status -> count for answers that are neither 2xx nor the limit status. */
  other: Record<string, number>
  errors: number
  timeouts: number
}

/** Split autocannon's per-status counts into accepted (2xx), rejected (the limit status) and the rest. */
export function countStatuses(
  statusCodeStats: Record<string, {count?: number}>,
  limitStatus: number,
): Pick<LoadTestCounts, 'accepted' | 'rejected' | 'other'> {
  let accepted = 0
  let rejected = 0
  const other: Record<string, number> = {}
  for (const [status, stats] of Object.entries(statusCodeStats)) {
    const count = stats.count ?? 0
    const code = Number(status)
    if (code >= 200 && code < 300) accepted += count
    else if (code === limitStatus) rejected += count
    else other[status] = (other[status] ?? 0) + count
  }

  return {accepted, rejected, other}
}

/** The verdict on a load test's counts: pass when nothing else came back and the accepted count is in range. */
export function judgeLoadTest(
  counts: LoadTestCounts,
  range: ExpectedRange,
  limitStatus: number,
): {ok: boolean; warn?: boolean; problems: string[]} {
  const problems: string[] = []
  const answered =
    counts.accepted + counts.rejected + Object.values(counts.other).reduce((sum, count) => sum + count, 0)
  if (answered === 0)
    return {
      ok: false,
      problems: [
        `none of ${counts.amount} requests got an answer (${counts.errors} errors, ${counts.timeouts} timeouts): is the gateway up?`,
      ],
    }
  const others = Object.entries(counts.other)
  if (others.length > 0)
    problems.push(`unexpected answers: ${others.map(([status, count]) => `${count}x ${status}`).join(', ')}`)
  if (counts.errors > 0)
    problems.push(`${counts.errors} requests failed without an answer (${counts.timeouts} timeouts)`)
  if (counts.accepted < range.min || counts.accepted > range.max) {
    const hint =
      counts.accepted > range.max && counts.rejected === 0 ? `: no ${limitStatus} at all, is limit_req active?` : ''
    problems.push(`${counts.accepted} accepted, outside the ${range.min}-${range.max} the limit allows${hint}`)
  }

  const ok = problems.length === 0
  // Everything passed and the range allowed that: the amount could not prove the limit works.
  const warn = ok && counts.rejected === 0 && range.max >= counts.amount
  return {ok, warn, problems}
}

export const rateLimitCheck: Check = {
  id: 'rate-limit',
  title: 'Rate limit under load',
  async run({manifest, http, clock}): Promise<CheckOutcome> {
    const route = pickLoadTestRoute(manifest)
    const limit = routeLimit(manifest, route)
    const limitStatus = manifest.rateLimit.status
    const amount = loadTestAmount(limit)
    const path = probePath(manifest, route)
    const scheme = manifest.tls.mode === 'off' ? 'http' : 'https'
    const port = http.port(scheme)

    // Earlier checks (and whoever else) may have filled the bucket: let it drain so the count depends on
    // this test alone. All our requests share one bucket: limit_req keys on the client address, which
    // is the same for every connection from this host.
    const drain = drainMs(limit)
    const readyAt = (http.lastRequestAt ?? clock.now()) + drain
    const waitMs = Math.max(0, readyAt - clock.now())
    if (waitMs > 0) await clock.sleep(waitMs)

    const sentAt: number[] = []
    const headers = {
      host: hostHeader(manifest.domain, scheme, port),
      'user-agent': 'create-gateway-verify (load test)',
      ...credentialHeaders(route.auth, 'valid', http.secrets, http.runId),
    }
    const started = performance.now()
    const result = await autocannon({
      url: `${scheme}://${urlHost(http.host)}:${port}${path}`,
      amount,
      connections: Math.min(LOAD_CONNECTIONS, amount),
      pipelining: 1,
      timeout: LOAD_TIMEOUT_SECONDS,
      // A gateway that refuses connections must end the test, not keep autocannon reconnecting.
      bailout: amount,
      servername: http.servername,
      tlsOptions: http.ca ? {ca: http.ca} : undefined,
      headers,
      requests: [
        {
          method: 'GET',
          path,
          // Built once per request sent: each gets its own id for the logs check.
          setupRequest: (request) => {
            const id = http.nextRequestId()
            http.loadTestIds.push(id)
            return {...request, headers: {...request.headers, 'x-request-id': id}}
          },
        },
      ],
      setupClient: (client) => {
        // Emitted right before each request is written (not in @types/autocannon).
        ;(client as unknown as NodeJS.EventEmitter).on('request', () => sentAt.push(performance.now()))
      },
    })
    const durationMs = Math.round(performance.now() - started)
    http.lastRequestAt = clock.now()

    const windowMs = sentAt.length > 1 ? Math.max(...sentAt) - Math.min(...sentAt) : 0
    const range = expectedAcceptedRange(limit, windowMs, amount)
    const counts: LoadTestCounts = {
      amount,
      ...countStatuses(result.statusCodeStats ?? {}, limitStatus),
      errors: result.errors,
      timeouts: result.timeouts,
    }
    http.loadTestAnswered += Object.values(result.statusCodeStats ?? {}).reduce(
      (sum, stats) => sum + (stats.count ?? 0),
      0,
    )
    const verdict = judgeLoadTest(counts, range, limitStatus)
    const data = {
      route: route.path,
      path,
      rate: route.rateLimit?.rate ?? manifest.rateLimit.rate,
      burst: limit.burst,
      status: limitStatus,
      connections: Math.min(LOAD_CONNECTIONS, amount),
      ...counts,
      expected: range,
      windowMs: Math.round(windowMs),
      durationMs,
      drainWaitMs: Math.round(waitMs),
      latencyMs: {p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max},
    }
    const rateText = route.rateLimit?.rate ?? manifest.rateLimit.rate
    const facts = `${counts.rejected}x ${limitStatus} of ${amount} sent over ${(windowMs / 1000).toFixed(2)} s (${rateText}, burst ${limit.burst}); p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`
    if (!verdict.ok) return fail(`${path}: ${verdict.problems.join('; ')}; ${facts}`, data)
    const summary = `${path}: ${counts.accepted} accepted (expected ${range.min}-${range.max}), ${facts}`
    if (verdict.warn)
      return {ok: true, warn: true, detail: `${summary}; limit never reached: raise the request count`, data}
    return pass(summary, data)
  },
}
