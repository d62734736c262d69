import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {createServer as createHttpsServer} from 'node:https'
import type {Socket} from 'node:net'
import type {TLSSocket} from 'node:tls'

import autocannon from 'autocannon'
import {afterEach, describe, expect, it} from 'vitest'

import {generateSelfSigned} from '../../src/certs/self-signed.js'
import {freePort} from '../helpers/e2e.js'
import {isPost, runLoad, type LoadOptions} from '../helpers/load.js'

/**
 * The scale tests' load generator against servers on 127.0.0.1 that misbehave on purpose: each kind
 * of failure is counted once, a clean close after a full answer is not, and autocannon, which
 * re-sends on a new connection, reports no error for the very server this one catches.
 */

/** What a server does with the n-th request (1-based) it reads on one connection. */
type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

const perConnection = new WeakMap<Socket, number>()
function dispatch(handler: Handler) {
  return (req: IncomingMessage, res: ServerResponse) => {
    // The whole request (a POST's body too) is read before the handler acts on the connection.
    req.resume()
    req.on('end', () => {
      const n = (perConnection.get(req.socket) ?? 0) + 1
      perConnection.set(req.socket, n)
      handler(req, res, n)
    })
  }
}

async function listen(server: Server): Promise<number> {
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  return typeof address === 'object' && address ? address.port : 0
}

const serve = (handler: Handler) => listen(createServer({keepAliveTimeout: 30_000}, dispatch(handler)))
const ok = (res: ServerResponse) => res.end('{"ok":true}')

/** One lane, so every request after the first of a connection goes on a reused one. */
const oneLane = (port: number, extra: Partial<LoadOptions> = {}) =>
  runLoad({port, lanes: 1, maxRequests: 6, durationMs: 20_000, timeoutMs: 5_000, postRatio: 0.5, ...extra})

describe('the non-retrying load generator', () => {
  it('counts a reset on a reused connection as a failure, and does not send that request again', async () => {
    const seen: string[] = []
    const port = await serve((req, res, n) => {
      seen.push(`${req.method} #${n}`)
      if (n === 2) req.socket.resetAndDestroy()
      else ok(res)
    })
    const report = await oneLane(port, {maxRequests: 5})
    // Three connections: each answers its first request and resets on its second, the third ends first.
    expect(report).toMatchObject({sent: 5, answered: 3, byClass: {'2xx': 3}, non2xx: 0, failed: 2})
    expect(report.errors).toEqual({reset: 2, closed: 0, timeout: 0, connect: 0, other: 0})
    expect(report.errorsOnReused).toBe(2)
    expect(report.failures.map((failure) => [failure.kind, failure.reused, failure.method])).toEqual([
      ['reset', true, 'POST'],
      ['reset', true, 'POST'],
    ])
    expect(report).toMatchObject({connections: 3, reconnects: 2})
    // The server saw each request exactly once: nothing was re-sent.
    expect(seen).toEqual(['GET #1', 'POST #2', 'GET #1', 'POST #2', 'GET #1'])
  })

  it('counts a connection closed (FIN) with the request pending, and an answer cut short', async () => {
    const port = await serve((req, res, n) => {
      if (n === 2) req.socket.end()
      else ok(res)
    })
    const report = await oneLane(port, {maxRequests: 5})
    // #1 ok, #2 closed, then a new connection: #1 ok, #2 closed, #1 ok.
    expect(report.errors).toEqual({reset: 0, closed: 2, timeout: 0, connect: 0, other: 0})
    expect(report).toMatchObject({sent: 5, answered: 3, failed: 2, errorsOnReused: 2})

    const cut = await serve((req, res, n) => {
      if (n === 2) {
        res.writeHead(200, {'content-length': '100'})
        res.write('{"partial":')
        res.socket?.end()
      } else ok(res)
    })
    const cutReport = await oneLane(cut, {maxRequests: 2})
    expect(cutReport.errors.closed).toBe(1)
    expect(cutReport.failures[0]).toMatchObject({kind: 'closed', status: 200, reused: true})
    expect(cutReport.answered).toBe(1)
  })

  it('counts a request with no answer within its timeout', async () => {
    const port = await serve((_req, res, n) => {
      if (n !== 2) ok(res)
    })
    const report = await oneLane(port, {maxRequests: 3, timeoutMs: 200})
    expect(report.errors).toEqual({reset: 0, closed: 0, timeout: 1, connect: 0, other: 0})
    expect(report).toMatchObject({sent: 3, answered: 2, failed: 1})
  })

  it('counts non-2xx answers by class and a refused connection as a connect error', async () => {
    const port = await serve((_req, res, n) => {
      res.statusCode = n % 3 === 0 ? 503 : n % 3 === 2 ? 429 : 200
      ok(res)
    })
    const report = await oneLane(port)
    expect(report).toMatchObject({sent: 6, answered: 6, byClass: {'2xx': 2, '4xx': 2, '5xx': 2}, non2xx: 4, failed: 4})
    expect(report.failures.map((failure) => [failure.kind, failure.status])).toEqual([
      ['status', 429],
      ['status', 503],
      ['status', 429],
      ['status', 503],
    ])
    expect(report.connections).toBe(1)

    const refused = await runLoad({port: await freePort(), lanes: 2, maxRequests: 4, durationMs: 10_000})
    expect(refused.errors).toEqual({reset: 0, closed: 0, timeout: 0, connect: 4, other: 0})
    expect(refused).toMatchObject({sent: 4, answered: 0, failed: 4})
  })

  it('does not count a clean `Connection: close` after a full answer: the lane reconnects', async () => {
    const port = await serve((_req, res) => {
      res.setHeader('connection', 'close')
      ok(res)
    })
    const report = await runLoad({port, lanes: 2, maxRequests: 10, durationMs: 20_000, postRatio: 0.5})
    expect(report).toMatchObject({sent: 10, answered: 10, byClass: {'2xx': 10}, failed: 0, failures: []})
    expect(report.errors).toEqual({reset: 0, closed: 0, timeout: 0, connect: 0, other: 0})
    expect(report).toMatchObject({connections: 10, reconnects: 8})
    expect(report.phases).toEqual({start: {sent: 10, answered2xx: 10, failed: 0, reconnects: 8}})
  })

  it('mixes GET and POST as asked, POSTs with their body, to the paths given, ending at maxRequests', async () => {
    const requests: string[] = []
    const server = createServer({keepAliveTimeout: 30_000}, (req, res) => {
      let body = ''
      req.on('data', (chunk: Buffer) => (body += chunk.toString()))
      req.on('end', () => {
        requests.push(`${req.method} ${req.url} ${body}`)
        ok(res)
      })
    })
    const port = await listen(server)
    const report = await runLoad({
      port,
      lanes: 1,
      maxRequests: 40,
      durationMs: 20_000,
      postRatio: 0.25,
      path: '/api/',
      postPath: '/api/post/',
      postBody: '{"n":1}',
    })
    expect(report).toMatchObject({
      sent: 40,
      answered: 40,
      failed: 0,
      connections: 1,
      reconnects: 0,
      endedBy: 'requests',
    })
    expect(requests.filter((line) => line === 'POST /api/post/ {"n":1}')).toHaveLength(10)
    expect(requests.filter((line) => line === 'GET /api/ ')).toHaveLength(30)
    expect(Array.from({length: 8}, (_, n) => isPost(n, 0.25))).toEqual([
      false,
      false,
      false,
      true,
      false,
      false,
      false,
      true,
    ])
  })

  it('over HTTPS: trusts only the given CA, sends SNI and Host, and counts a reset on a reused TLS connection', async () => {
    const pems = await generateSelfSigned({domain: 'api.localhost'})
    const seen: string[] = []
    // The TCP socket under the TLS one, which is the one that can send an RST (one lane: one at a time).
    let tcp: Socket | undefined
    const server = createHttpsServer(
      {cert: pems.cert, key: pems.key, keepAliveTimeout: 30_000},
      dispatch((req, res, n) => {
        seen.push(`${(req.socket as TLSSocket).servername} ${req.headers.host}`)
        if (n === 3) tcp?.resetAndDestroy()
        else ok(res)
      }),
    )
    server.on('connection', (socket: Socket) => (tcp = socket))
    const port = await listen(server)
    const tls = {ca: pems.caCert, servername: 'api.localhost'}
    const report = await runLoad({port, tls, lanes: 1, maxRequests: 4, durationMs: 20_000})
    expect(report.errors).toEqual({reset: 1, closed: 0, timeout: 0, connect: 0, other: 0})
    expect(report).toMatchObject({sent: 4, answered: 3, errorsOnReused: 1, reconnects: 1})
    expect(new Set(seen)).toEqual(new Set([`api.localhost api.localhost:${port}`]))

    // Another CA: the handshake fails, which is a connect error, never an answer.
    const other = await generateSelfSigned({domain: 'api.localhost'})
    const untrusted = await runLoad({
      port,
      tls: {...tls, ca: other.caCert},
      lanes: 1,
      maxRequests: 2,
      durationMs: 20_000,
    })
    expect(untrusted.errors.connect).toBe(2)
    expect(untrusted.answered).toBe(0)
  })

  it('refuses to load anything but this machine', () => {
    expect(() => runLoad({host: '10.0.0.1', port: 80, maxRequests: 1, durationMs: 1000})).toThrow(/only this machine/)
  })

  it('why it exists: autocannon re-sends on a new connection and counts no error where this one counts each', async () => {
    // Every third request of a connection: the server closes it without answering, as an NGINX worker
    // that is shutting down closes a keep-alive connection a request is arriving on.
    const port = await serve((req, res, n) => {
      if (n % 3 === 0) req.socket.end()
      else ok(res)
    })
    const ours = await runLoad({port, lanes: 1, maxRequests: 30, durationMs: 20_000, postRatio: 0})
    expect(ours).toMatchObject({sent: 30, answered: 20, failed: 10, errorsOnReused: 10})
    expect(ours.errors.closed).toBe(10)

    const theirs = await autocannon({url: `http://127.0.0.1:${port}/`, connections: 1, amount: 30, timeout: 5})
    // 30 requests written, 20 answered, and still no error, no timeout, no non-2xx.
    expect(theirs.requests.sent).toBe(30)
    expect(theirs.requests.total).toBe(20)
    expect([theirs.errors, theirs.timeouts, theirs.non2xx]).toEqual([0, 0, 0])
  })
})
