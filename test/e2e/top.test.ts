import {appendFileSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {Snapshot} from '../../src/top/snapshot.js'
import {retryUntil} from '../../src/util/retry.js'
import {tempDir} from '../helpers/cli.js'
import {
  cleanupRun,
  freePort,
  gatewayAccessLog,
  httpsGet,
  newRunId,
  OFFLINE_IMAGES,
  runCliAsync,
  waitForEngineAndImages,
} from '../helpers/e2e.js'

/**
 * `top --once --json` against a real stack: after a known number of requests to each route (to
 * 127.0.0.1 only), the snapshot counts exactly those, with their status classes and latency
 * percentiles. The project carries the run id; afterAll removes it whatever happened.
 */

const RUN_ID = newRunId()
const ENV = {CREATE_GATEWAY_RUN_ID: RUN_ID}
const DOMAIN = 'api.localhost'
const NAME = `cgt-${RUN_ID}`
let dir = ''
let parent = ''
let httpsPort = 0

const cli = (args: string[], timeoutMs = 180_000) => runCliAsync(args, {cwd: parent, env: ENV, timeoutMs})

async function top(): Promise<Snapshot> {
  const result = await cli(['top', '--dir', dir, '--once', '--json', '--window', '10m'], 60_000)
  expect(result.status, result.stderr).toBe(0)
  return JSON.parse(result.stdout) as Snapshot
}

const route = (snapshot: Snapshot, path: string) => {
  const found = snapshot.routes.find((candidate) => candidate.path === path)
  if (!found) throw new Error(`no route ${path} in ${JSON.stringify(snapshot.routes)}`)
  return found
}

beforeAll(async () => {
  await waitForEngineAndImages(300_000)
  parent = tempDir('cg-top-e2e-')
  dir = join(parent, NAME)
  const http = await freePort()
  httpsPort = await freePort()
  while (httpsPort === http) httpsPort = await freePort()
  const init = await cli(
    [
      'init',
      dir,
      '--yes',
      '--name',
      NAME,
      '--domain',
      DOMAIN,
      '--http-port',
      String(http),
      '--https-port',
      String(httpsPort),
      '--route',
      '/private/=web:api-key',
      // One replica is enough to count upstream rows, and lighter on a shared engine.
      '--replicas',
      '1',
      '--python-image',
      OFFLINE_IMAGES.python,
      '--nginx-image',
      OFFLINE_IMAGES.nginx,
    ],
    60_000,
  )
  expect(init.status, init.stderr).toBe(0)
  // Fewer Gunicorn workers than the default (2 x cores + 1): on a loaded shared machine five workers
  // booting at once can outlast Gunicorn's 30 s boot timeout. top reads the gateway, not Django.
  appendFileSync(join(dir, 'services', 'web', 'Dockerfile'), 'ENV GUNICORN_WORKERS=1\n')
  const up = await cli(['up', '--dir', dir, '--timeout', '180'], 600_000)
  expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
}, 900_000)

afterAll(async () => {
  if (dir) await cli(['down', '--dir', dir], 120_000).catch(() => undefined)
  await cleanupRun(RUN_ID, [NAME])
  if (parent) rmSync(parent, {recursive: true, force: true})
}, 180_000)

describe('top --once --json on a running stack', () => {
  it("counts each route's requests and reports their p50/p95/p99", async () => {
    const before = await top()
    const ca = readFileSync(join(dir, 'certs', 'ca.pem'), 'utf8')
    // Fewer than the default burst (20) per client, spaced out: no request is rate-limited.
    const sent = {'/': 12, '/private/': 6}
    for (const [path, count] of Object.entries(sent)) {
      for (let index = 0; index < count; index += 1) {
        const answer = await httpsGet({port: httpsPort, domain: DOMAIN, ca, path})
        expect(answer.status).toBe(path === '/private/' ? 401 : 200)
        await new Promise((resolve) => setTimeout(resolve, 150))
      }
    }

    const delta = (snapshot: Snapshot, path: string) =>
      route(snapshot, path).requests - (before.routes.find((row) => row.path === path)?.requests ?? 0)
    // NGINX writes each line as it answers; retry briefly in case the log lags behind the answer.
    let lastAccess = ''
    const after = await retryUntil(
      async () => {
        lastAccess = (await gatewayAccessLog(NAME)).split('\n').slice(-2).join(' | ')
        return top()
      },
      (snapshot) => delta(snapshot, '/') >= sent['/'] && delta(snapshot, '/private/') >= sent['/private/'],
      {
        timeoutMs: 20_000,
        intervalMs: 1000,
        describe: 'the requests in top --once --json',
        explain: (snapshot) =>
          `${JSON.stringify(snapshot.routes.map((row) => [row.path, row.requests]))}; access log ends: ${lastAccess}`,
      },
    )
    expect(delta(after, '/')).toBe(sent['/'])
    expect(delta(after, '/private/')).toBe(sent['/private/'])

    const root = route(after, '/')
    expect(root.service).toBe('web')
    expect(root.status['2xx']).toBeGreaterThanOrEqual(sent['/'])
    expect(root.status.rateLimited).toBe(0)
    for (const latency of [root.latency, root.upstreamLatency]) {
      expect(latency.p50).not.toBeNull()
      expect(latency.p50!).toBeLessThanOrEqual(latency.p95!)
      expect(latency.p95!).toBeLessThanOrEqual(latency.p99!)
    }

    const secret = route(after, '/private/')
    expect(secret.status['4xx']).toBeGreaterThanOrEqual(sent['/private/'])
    expect(secret.latency.p99).not.toBeNull()
    // Web's replicas answered the proxied requests, each one an upstream row of its own.
    const web = after.upstreams.filter((upstream) => upstream.service === 'web')
    expect(web.length).toBeGreaterThanOrEqual(1)
    expect(web.reduce((sum, upstream) => sum + upstream.requests, 0)).toBeGreaterThanOrEqual(sent['/'])
    expect(after.clients[0]!.requests).toBeGreaterThanOrEqual(sent['/'] + sent['/private/'])
    console.log(`[e2e] top --once --json routes:\n${JSON.stringify(after.routes, null, 1)}`)
  }, 180_000)

  it('prints the same counts as panels without --json', async () => {
    const result = await cli(['top', '--dir', dir, '--once', '--window', '10m'], 60_000)
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^ROUTES$/m)
    expect(result.stdout).toMatch(/^\/private\/\s+web\s+\d+/m)
  }, 60_000)

  it('refuses a window that is not a duration with exit code 2', async () => {
    const result = await cli(['top', '--dir', dir, '--once', '--window', 'soon'], 60_000)
    expect(result.status).toBe(2)
    expect(result.stderr).toContain('--window')
  }, 60_000)
})
