// A load generator that never re-sends a request, for the scale tests and bench/scale.js (plain JS so
// the bench runs it without a build; the types are in load.d.ts).
//
// Why not autocannon: when a keep-alive connection is closed with a request on it, autocannon opens a
// new connection and sends the next request without counting anything (lib/httpClient.js reconnects
// on 'end'), so exactly the failure `scale` must avoid (NGINX's old workers closing connections at a
// reload) reads as zero errors. Here each lane owns one keep-alive connection (its own Agent, one
// socket) and sends requests back to back on it, like wrk: a request that does not get a full answer
// is one failure, by kind, and the lane goes on with the next request on a new connection.
//
// Kinds of failure:
//   reset    the connection was reset (RST, EPIPE) before the answer was complete
//   closed   the server closed the connection (FIN) with the request pending: no answer, or a cut one
//   timeout  no full answer within timeoutMs
//   connect  a new connection could not be opened (refused, TLS handshake failed)
//   other    anything else (kept apart so it is seen)
// A connection the server closes after a full answer (`Connection: close`, an idle keep-alive closed
// between requests) is no failure: the lane reconnects, and `reconnects` counts it.
import {Agent as HttpAgent, request as httpRequest} from 'node:http'
import {Agent as HttpsAgent, request as httpsRequest} from 'node:https'
import {performance} from 'node:perf_hooks'

/** Load goes to this machine only. */
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])
/** Hard bounds whatever the caller asks: a test that hangs must not keep a load running. */
const MAX_DURATION_MS = 15 * 60_000
const MAX_REQUESTS = 2_000_000
/** The failures kept with their details (all of them are counted). */
const MAX_FAILURES_KEPT = 500

export const ERROR_KINDS = Object.freeze(['reset', 'closed', 'timeout', 'connect', 'other'])

function positive(name, value, max) {
  if (!Number.isFinite(value) || value <= 0) throw new Error(`load: ${name} must be a positive number, got ${value}`)
  return Math.min(value, max)
}

/**
 * Which of `count` requests are POSTs for a ratio in [0, 1], spread evenly: request n is a POST when
 * floor((n + 1) * ratio) > floor(n * ratio). Deterministic, so a run can be repeated.
 */
export function isPost(n, ratio) {
  return Math.floor((n + 1) * ratio) > Math.floor(n * ratio)
}

function statusClass(status) {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other'
}

/** The kind of a request's failure from what is known when it ended. */
function classify(error, {timedOut, established, responseStarted}) {
  if (timedOut) return 'timeout'
  if (!established) return 'connect'
  // Node's own words: "socket hang up" is a FIN before any response, "aborted" a response cut short.
  if (error.code === 'ECONNRESET' && /socket hang up|aborted/.test(error.message)) return 'closed'
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return 'reset'
  if (responseStarted) return 'closed'
  return 'other'
}

/**
 * Start the load now; it ends on stop(), after maxRequests requests in all, or after durationMs,
 * whichever is first (requests in flight then finish, bounded by timeoutMs). `done` and stop() give
 * the same report.
 */
export function startLoad(options) {
  const host = options.host ?? '127.0.0.1'
  if (!LOOPBACK.has(host)) throw new Error(`load: only this machine may be loaded (127.0.0.1, ::1), not ${host}`)
  const port = positive('port', options.port, 65_535)
  const lanes = Math.floor(positive('lanes', options.lanes ?? 8, 64))
  const maxRequests = Math.floor(positive('maxRequests', options.maxRequests, MAX_REQUESTS))
  const durationMs = positive('durationMs', options.durationMs, MAX_DURATION_MS)
  const timeoutMs = positive('timeoutMs', options.timeoutMs ?? 10_000, 120_000)
  const postRatio = Math.min(1, Math.max(0, options.postRatio ?? 0.25))
  const rate = options.rate === undefined ? undefined : positive('rate', options.rate, 100_000)
  const getPath = options.path ?? '/'
  const postPath = options.postPath ?? getPath
  const postBody = Buffer.from(options.postBody ?? '{"load":true}')
  const tls = options.tls
  const request = tls ? httpsRequest : httpRequest
  const hostHeader = options.hostHeader ?? (tls?.servername ? `${tls.servername}:${port}` : `${host}:${port}`)

  const started = performance.now()
  const elapsed = () => performance.now() - started
  const report = {
    sent: 0,
    answered: 0,
    byClass: {},
    non2xx: 0,
    errors: Object.fromEntries(ERROR_KINDS.map((kind) => [kind, 0])),
    errorsOnReused: 0,
    failed: 0,
    connections: 0,
    reconnects: 0,
    phases: {},
    failures: [],
    durationMs: 0,
    endedBy: 'stop',
  }
  let phase = options.phase ?? 'start'
  let stopped = false
  const phaseOf = (name) => (report.phases[name] ??= {sent: 0, answered2xx: 0, failed: 0, reconnects: 0})

  const fail = (failure) => {
    report.failed++
    phaseOf(failure.phase).failed++
    if (report.failures.length < MAX_FAILURES_KEPT) report.failures.push(failure)
  }

  /** One request on the lane's connection; resolves when it is answered or has failed, never rejects. */
  const send = (lane, n) =>
    new Promise((resolve) => {
      const method = isPost(n, postRatio) ? 'POST' : 'GET'
      const sentAt = elapsed()
      const sentIn = phase
      report.sent++
      phaseOf(sentIn).sent++
      let settled = false
      let timedOut = false
      let established = false
      let reused = false
      let responseStarted = false
      let status = 0
      const settle = (error) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (!error) {
          resolve()
          return
        }

        const kind = classify(error, {timedOut, established, responseStarted})
        report.errors[kind]++
        if (reused) report.errorsOnReused++
        fail({
          atMs: Math.round(sentAt),
          phase: sentIn,
          lane: lane.index,
          method,
          kind,
          detail: error.code ? `${error.code} ${error.message}` : error.message,
          reused,
          ...(responseStarted ? {status} : {}),
        })
        resolve()
      }

      const headers = {host: hostHeader, ...options.headers}
      if (method === 'POST') {
        headers['content-type'] = options.postContentType ?? 'application/json'
        headers['content-length'] = String(postBody.length)
      }

      const req = request({
        host,
        port,
        method,
        path: method === 'POST' ? postPath : getPath,
        headers,
        agent: lane.agent,
        ...(tls ? {ca: tls.ca, servername: tls.servername} : {}),
      })
      const timer = setTimeout(() => {
        timedOut = true
        req.destroy(Object.assign(new Error(`no full answer within ${timeoutMs} ms`), {code: 'TIMEOUT'}))
      }, timeoutMs)
      req.on('socket', (socket) => {
        reused = req.reusedSocket
        if (reused) {
          established = true
          return
        }

        report.connections++
        if (lane.opened++ > 0) {
          report.reconnects++
          phaseOf(sentIn).reconnects++
        }
        // A fresh connection counts as open once TCP (and TLS, for HTTPS) is through.
        socket.once(tls ? 'secureConnect' : 'connect', () => (established = true))
      })
      req.on('response', (res) => {
        responseStarted = true
        status = res.statusCode ?? 0
        const chunks = []
        res.on('data', (chunk) => chunks.push(chunk))
        res.on('aborted', () => settle(Object.assign(new Error('aborted'), {code: 'ECONNRESET'})))
        res.on('error', (error) => settle(error))
        res.on('end', () => {
          if (settled) return
          // A response the server cut short ends without `complete`.
          if (!res.complete) {
            settle(Object.assign(new Error('aborted'), {code: 'ECONNRESET'}))
            return
          }

          const kindOfStatus = statusClass(status)
          report.answered++
          report.byClass[kindOfStatus] = (report.byClass[kindOfStatus] ?? 0) + 1
          if (kindOfStatus === '2xx') phaseOf(sentIn).answered2xx++
          else {
            report.non2xx++
            fail({atMs: Math.round(sentAt), phase: sentIn, lane: lane.index, method, kind: 'status', status, reused})
          }

          options.onAnswer?.({status, method, phase: sentIn, lane: lane.index, body: Buffer.concat(chunks).toString()})
          settle()
        })
      })
      req.on('error', (error) => settle(error))
      req.end(method === 'POST' ? postBody : undefined)
    })

  const ended = () => stopped || report.sent >= maxRequests || elapsed() >= durationMs
  const runLane = async (index) => {
    const AgentClass = tls ? HttpsAgent : HttpAgent
    const lane = {index, opened: 0, agent: new AgentClass({keepAlive: true, maxSockets: 1, maxFreeSockets: 1})}
    const interval = rate === undefined ? 0 : (1000 * lanes) / rate
    let next = (index * interval) / lanes
    try {
      for (let n = 0; !ended(); n++) {
        const wait = next - elapsed()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(wait, durationMs)))
        if (ended()) break
        next = Math.max(next + interval, elapsed() - interval)
        await send(lane, n)
      }
    } finally {
      lane.agent.destroy()
    }
  }

  const done = Promise.all(Array.from({length: lanes}, (_, index) => runLane(index))).then(() => {
    report.durationMs = Math.round(elapsed())
    if (!stopped) report.endedBy = report.sent >= maxRequests ? 'requests' : 'time'
    return report
  })
  return {
    done,
    report,
    setPhase(next) {
      phase = next
    },
    stop() {
      stopped = true
      return done
    },
  }
}

/** Run a load to its end (maxRequests or durationMs). */
export function runLoad(options) {
  return startLoad(options).done
}

/** One line for a log: what was sent and how it ended. */
export function describeLoad(report) {
  const classes = Object.entries(report.byClass)
    .sort()
    .map(([kind, count]) => `${count} ${kind}`)
    .join(', ')
  const errors = ERROR_KINDS.map((kind) => `${report.errors[kind]} ${kind}`).join(', ')
  return (
    `${report.sent} sent, ${report.answered} answered (${classes || 'none'}), errors: ${errors} ` +
    `(${report.errorsOnReused} on a reused connection), ${report.connections} connections ` +
    `(${report.reconnects} reconnects), ${(report.durationMs / 1000).toFixed(1)} s`
  )
}
