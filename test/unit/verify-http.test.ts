import {createServer, type IncomingHttpHeaders, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterEach, describe, expect, it} from 'vitest'

import {parseManifest} from '../../src/manifest/load.js'
import type {Clock} from '../../src/util/retry.js'
import {GatewayClient, GatewayUnreachableError} from '../../src/verify/http.js'

const secrets = {
  secretKeys: {},
  basicAuth: {user: 'gateway', password: 's3cret'},
  apiKeys: ['key-1'],
  jwtSecret: 'jwt-key-0123456789-abcdefghij-ABCDEFGHIJ',
}

/** A clock whose sleeps return at once but still move time on, so retry bounds are exercised. */
function fakeClock(): Clock & {slept: number[]} {
  let now = 1_000_000
  const slept: number[] = []
  return {
    slept,
    now: () => now,
    sleep: async (ms) => {
      slept.push(ms)
      now += ms
    },
  }
}

let server: Server | undefined
afterEach(() => {
  server?.close()
  server = undefined
})

/** A stand-in gateway on 127.0.0.1: the first `limited` requests get the rate-limit answer. */
async function gateway(limited: number): Promise<{port: number; seen: IncomingHttpHeaders[]}> {
  const seen: IncomingHttpHeaders[] = []
  server = createServer((request, response) => {
    seen.push(request.headers)
    if (seen.length <= limited) {
      response.writeHead(503, {'content-type': 'application/json', 'x-gateway-error': 'rate-limited'})
      response.end('{"error":"rate limit exceeded"}')
      return
    }

    response.writeHead(200, {'content-type': 'application/json'})
    response.end(JSON.stringify({service: 'web', request_id: request.headers['x-request-id']}))
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  return {port: (server!.address() as AddressInfo).port, seen}
}

function client(port: number, clock: Clock) {
  const manifest = parseManifest({
    version: 1,
    name: 'demo',
    domain: 'api.localhost',
    tls: {mode: 'off'},
    ports: {http: port, https: port + 1},
    services: {web: {kind: 'django'}},
    routes: [{path: '/', service: 'web', auth: 'basic'}],
  })
  return new GatewayClient({manifest, secrets, runId: 'ab12', clock})
}

describe('gateway client', () => {
  it('tags each request, sends Host and credentials, and parses JSON', async () => {
    const {port, seen} = await gateway(0)
    const http = client(port, fakeClock())
    const response = await http.send({scheme: 'http', path: '/api/', auth: 'basic'})
    expect(response.status).toBe(200)
    expect(response.json).toEqual({service: 'web', request_id: 'verify-ab12-1'})
    expect(seen[0]).toMatchObject({
      host: `api.localhost:${port}`,
      'x-request-id': 'verify-ab12-1',
      authorization: `Basic ${Buffer.from('gateway:s3cret').toString('base64')}`,
    })
    expect(http.answered).toEqual(['verify-ab12-1'])
  })

  it("waits out the gateway's own rate-limit answers, each try with a new id", async () => {
    const {port, seen} = await gateway(3)
    const clock = fakeClock()
    const http = client(port, clock)
    const response = await http.send({scheme: 'http', path: '/api/'})
    expect(response.status).toBe(200)
    expect(seen.map((headers) => headers['x-request-id'])).toEqual([
      'verify-ab12-1',
      'verify-ab12-2',
      'verify-ab12-3',
      'verify-ab12-4',
    ])
    expect(clock.slept).toEqual([120, 120, 120])
  })

  it('gives the rate-limited answer back when asked, or when the wait runs out', async () => {
    const {port} = await gateway(1000)
    const http = client(port, fakeClock())
    expect((await http.send({scheme: 'http', path: '/', acceptRateLimited: true})).status).toBe(503)
    const last = await http.send({scheme: 'http', path: '/'})
    expect(last.status).toBe(503)
    expect(http.answered.length).toBeGreaterThan(2)
  })

  it('reports a gateway that does not answer', async () => {
    const {port} = await gateway(0)
    server!.close()
    await expect(client(port, fakeClock()).send({scheme: 'http', path: '/'})).rejects.toBeInstanceOf(
      GatewayUnreachableError,
    )
  })
})
