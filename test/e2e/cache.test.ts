import {appendFileSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {Snapshot} from '../../src/top/snapshot.js'
import type {VerifyReport} from '../../src/verify/types.js'
import {retryUntil} from '../../src/util/retry.js'
import {tempDir} from '../helpers/cli.js'
import {
  cleanupRun,
  docker,
  freePort,
  httpsGet,
  newRunId,
  OFFLINE_IMAGES,
  runCliAsync,
  waitForEngineAndImages,
} from '../helpers/e2e.js'

/**
 * Response caching on a real stack (127.0.0.1 only): a public route and two routes with auth
 * (basic, api-key) cached; MISS then HIT with the same body, credentials still checked while the
 * answer is cached, requests with a cookie bypassing it, a stale answer when the service is down,
 * `verify`'s cache check passing, and failing when the cache is taken out of the config.
 */

const RUN_ID = newRunId()
const ENV = {CREATE_GATEWAY_RUN_ID: RUN_ID}
const DOMAIN = 'api.localhost'
const NAME = `cgc-${RUN_ID}`
let dir = ''
let parent = ''
let httpsPort = 0
let ca = ''
let apiKey = ''
let basic = ''

const cli = (args: string[], timeoutMs = 180_000) => runCliAsync(args, {cwd: parent, env: ENV, timeoutMs})
const get = (path: string, headers: Record<string, string> = {}) =>
  httpsGet({port: httpsPort, domain: DOMAIN, ca, path, headers})
const cacheStatus = (answer: {headers: Record<string, unknown>}) => answer.headers['x-cache-status']
/** A URI this run has not asked before, so the first answer is a MISS whatever ran earlier. */
let uris = 0
const fresh = (path: string) => `${path}api/?t=${RUN_ID}-${++uris}`

async function verifyCache(): Promise<{status: number; report: VerifyReport}> {
  const result = await cli(['verify', '--dir', dir, '--only', 'cache', '--json'], 120_000)
  return {status: result.status ?? -1, report: JSON.parse(result.stdout) as VerifyReport}
}

beforeAll(async () => {
  await waitForEngineAndImages(300_000)
  parent = tempDir('cg-cache-e2e-')
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
      '/keyed/=web:api-key',
      '--cache',
      '/=3s',
      '--cache',
      '/secure/=1m',
      '--cache',
      '/keyed/=1m',
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
  appendFileSync(join(dir, 'services', 'web', 'Dockerfile'), 'ENV GUNICORN_WORKERS=1\n')
  const up = await cli(['up', '--dir', dir, '--timeout', '180'], 600_000)
  expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
  ca = readFileSync(join(dir, 'certs', 'ca.pem'), 'utf8')
  apiKey = readFileSync(join(dir, 'secrets', 'api-keys.txt'), 'utf8')
    .split('\n')
    .find((line) => line.trim() !== '' && !line.startsWith('#'))!
    .trim()
  basic = `Basic ${Buffer.from(
    readFileSync(join(dir, 'secrets', 'basic-auth.txt'), 'utf8')
      .split('\n')[0]!
      .trim(),
  ).toString('base64')}`
}, 900_000)

afterAll(async () => {
  if (dir) await cli(['down', '--dir', dir], 120_000).catch(() => undefined)
  await cleanupRun(RUN_ID, [NAME])
  if (parent) rmSync(parent, {recursive: true, force: true})
}, 180_000)

describe('a cached public route', () => {
  it('answers MISS, then HIT with the same body', async () => {
    const uri = fresh('/')
    const first = await get(uri)
    const again = await get(uri)
    expect([first.status, cacheStatus(first)]).toEqual([200, 'MISS'])
    expect([again.status, cacheStatus(again)]).toEqual([200, 'HIT'])
    expect(again.body).toBe(first.body)
  })

  it('sends requests with a cookie or Authorization to the service, and does not store their answer', async () => {
    const uri = fresh('/')
    const credentialed: Array<Record<string, string>> = [{Cookie: 'sessionid=abc'}, {Authorization: 'Bearer someone'}]
    for (const headers of credentialed) {
      const answer = await get(uri, headers)
      expect([answer.status, cacheStatus(answer)]).toEqual([200, 'BYPASS'])
    }

    // Nothing was stored by them: the first plain request is still a MISS.
    expect(cacheStatus(await get(uri))).toBe('MISS')
  })

  it('serves the stale answer when the service is down after the TTL', async () => {
    const uri = fresh('/')
    const first = await get(uri)
    expect(cacheStatus(first)).toBe('MISS')
    const web = await docker.listContainers({
      filters: {label: [`com.docker.compose.project=${NAME}`, 'com.docker.compose.service=web']},
    })
    expect(web).toHaveLength(1)
    await docker.getContainer(web[0]!.Id).stop({t: 5})
    try {
      await new Promise((resolve) => setTimeout(resolve, 4000)) // past the route's 3 s TTL
      const stale = await get(uri)
      expect([stale.status, cacheStatus(stale)]).toEqual([200, 'STALE'])
      expect(stale.body).toBe(first.body)
      // An answer never cached has nothing to fall back on: the gateway's own 502 or 504.
      const uncached = await get(fresh('/'))
      expect([502, 504]).toContain(uncached.status)
      expect(uncached.headers['x-gateway-error']).toMatch(/^upstream-/)
    } finally {
      await docker.getContainer(web[0]!.Id).start()
      await retryUntil(
        async () => (await get(fresh('/'))).status,
        (status) => status === 200,
        {
          timeoutMs: 120_000,
          intervalMs: 1000,
          describe: 'web answering again',
        },
      )
    }
  }, 240_000)
})

describe('cached routes with auth', () => {
  it.each([
    ['/keyed/', () => ({'X-API-Key': apiKey}), {'X-API-Key': 'not-the-key'}],
    [
      '/secure/',
      () => ({Authorization: basic}),
      {Authorization: `Basic ${Buffer.from('gateway:nope').toString('base64')}`},
    ],
  ] as const)('%s checks the credential on every request, cached or not', async (path, valid, wrong) => {
    const uri = fresh(path)
    const first = await get(uri, valid())
    const again = await get(uri, valid())
    expect([first.status, cacheStatus(first)]).toEqual([200, 'MISS'])
    expect([again.status, cacheStatus(again)]).toEqual([200, 'HIT'])
    // The answer is in the cache; without the credential, or with a wrong one, it is still refused.
    expect((await get(uri)).status).toBe(401)
    expect((await get(uri, wrong)).status).toBe(401)
  })
})

describe('verify and top on a cached stack', () => {
  it("verify's cache check passes: MISS, HIT, and 401 without credentials on each cached route", async () => {
    const {status, report} = await verifyCache()
    const check = report.checks.find((candidate) => candidate.id === 'cache')!
    expect(status, check.detail).toBe(0)
    expect(check.ok).toBe(true)
    expect(check.detail).toContain('/keyed/ MISS/HIT/401/401')
  })

  it('top --once --json counts the cache hits of the route', async () => {
    const result = await cli(['top', '--dir', dir, '--once', '--json', '--window', '10m'], 60_000)
    expect(result.status, result.stderr).toBe(0)
    const snapshot = JSON.parse(result.stdout) as Snapshot
    const root = snapshot.routes.find((route) => route.path === '/')!
    // The tests above: at least one HIT and one STALE on "/", and its misses and bypasses.
    expect(root.cacheHits).toBeGreaterThanOrEqual(2)
    expect(root.cacheHitRatio).toBeGreaterThan(0)
    expect(root.cacheHitRatio).toBeLessThan(1)
  })

  it("verify's cache check fails when the cache is taken out of the gateway's config", async () => {
    const conf = join(dir, 'gateway', 'conf.d', 'gateway.conf')
    const original = readFileSync(conf, 'utf8')
    writeFileSync(conf, original.replace(/^\s*proxy_cache gateway_cache;\n/gm, ''))
    const gateway = docker.getContainer(`${NAME}-gateway-1`)
    const reload = async () => {
      const exec = await gateway.exec({Cmd: ['nginx', '-s', 'reload'], AttachStdout: true, AttachStderr: true})
      await exec.start({})
      await new Promise((resolve) => setTimeout(resolve, 1500))
    }

    try {
      await reload()
      const {status, report} = await verifyCache()
      const check = report.checks.find((candidate) => candidate.id === 'cache')!
      expect(status).toBe(1)
      expect(check.ok).toBe(false)
      expect(check.detail).toContain('expected 200 MISS')
    } finally {
      writeFileSync(conf, original)
      await reload()
    }

    expect((await verifyCache()).status).toBe(0)
  }, 240_000)
})
