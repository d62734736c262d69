import {existsSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import {request} from 'node:https'
import {request as httpRequest} from 'node:http'
import {connect} from 'node:tls'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {retryUntil} from '../../src/util/retry.js'
import {CHECK_IDS} from '../../src/verify/types.js'
import {tempDir} from '../helpers/cli.js'
import {
  cleanupRun,
  docker,
  freePort,
  gatewayAccessLog,
  newRunId,
  OFFLINE_IMAGES,
  projectContainersChecked,
  runCliAsync,
  waitForEngineAndImages,
} from '../helpers/e2e.js'

/**
 * Issue 10 on the real engine: a fresh init + up refuses unknown names, sets X-Forwarded-For itself,
 * runs every container locked down (read-only root, no capabilities, no-new-privileges, limits, capped
 * logs, no SECRET_KEY in the environment), logs the route and service of an api-key route, reports
 * healthy in `status` right after `up`, prints no secret when piped, and still passes `verify` and
 * `manage.py check --deploy`. The project carries the run id; afterAll removes it whatever happened.
 */

const RUN_ID = newRunId()
const ENV = {CREATE_GATEWAY_RUN_ID: RUN_ID}
const DOMAIN = 'api.localhost'
const NAME = `cgh-${RUN_ID}`
let dir = ''
let parent = ''
let httpsPort = 0
let httpPort = 0
let ca = ''
let initStdout = ''
let statusAfterUp: {containers?: Array<{name: string; health: string; state: string}>} = {}

/** Every file under `root` (relative path -> bytes). */
function fileSizes(root: string): Record<string, number> {
  const sizes: Record<string, number> = {}
  for (const entry of readdirSync(root, {recursive: true, withFileTypes: true}))
    if (entry.isFile())
      sizes[join(entry.parentPath, entry.name).slice(root.length + 1)] = statSync(
        join(entry.parentPath, entry.name),
      ).size
  return sizes
}

const cli = (args: string[], timeoutMs = 180_000) => runCliAsync(args, {cwd: parent, env: ENV, timeoutMs})

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One HTTPS request to 127.0.0.1 with the given SNI and Host; rejects when the gateway closes on it. */
function httpsAsk(options: {servername: string; host: string; path: string; headers?: Record<string, string>}) {
  return new Promise<Reply>((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: httpsPort,
        path: options.path,
        servername: options.servername,
        headers: {Host: options.host, ...options.headers},
        ca,
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let body = ''
        res.on('data', (chunk: Buffer) => (body += chunk.toString()))
        res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body}))
      },
    )
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}

function httpAsk(host: string, path: string) {
  return new Promise<Reply>((resolve, reject) => {
    const req = httpRequest(
      {host: '127.0.0.1', port: httpPort, path, headers: {Host: host}, agent: false, timeout: 10_000},
      (res) => {
        res.resume()
        res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body: ''}))
      },
    )
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}

beforeAll(async () => {
  await waitForEngineAndImages(300_000)
  parent = tempDir('cg-hardening-e2e-')
  dir = join(parent, NAME)
  httpPort = await freePort()
  httpsPort = await freePort()
  while (httpsPort === httpPort) httpsPort = await freePort()
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
      String(httpPort),
      '--https-port',
      String(httpsPort),
      '--route',
      '/keyed/=web:api-key',
      '--python-image',
      OFFLINE_IMAGES.python,
      '--nginx-image',
      OFFLINE_IMAGES.nginx,
    ],
    60_000,
  )
  expect(init.status, init.stderr).toBe(0)
  initStdout = init.stdout
  ca = readFileSync(join(dir, 'certs/ca.pem'), 'utf8')
  const up = await cli(['up', '--dir', dir, '--timeout', '180'], 600_000)
  expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
  // Right after up, before anything else: what `status` says then is what this test is about.
  const status = await cli(['status', '--dir', dir, '--json'], 60_000)
  expect(status.status, status.stderr).toBe(0)
  statusAfterUp = JSON.parse(status.stdout) as typeof statusAfterUp
}, 900_000)

afterAll(async () => {
  if (dir) await cli(['down', '--dir', dir], 120_000).catch(() => undefined)
  await cleanupRun(RUN_ID, [NAME])
  if (parent) rmSync(parent, {recursive: true, force: true})
}, 180_000)

describe('a hardened stack on the real engine', () => {
  it('reports every container healthy in `status --json` right after `up`', () => {
    const containers = statusAfterUp.containers ?? []
    expect(containers.map((container) => container.name).sort()).toEqual(
      [`${NAME}-gateway-1`, `${NAME}-web-1`, `${NAME}-web-2`].sort(),
    )
    for (const container of containers) expect(container.health, container.name).toBe('healthy')
  })

  it('printed no secret when init was piped, only the files that hold them', () => {
    const password = readFileSync(join(dir, 'secrets/basic-auth.txt'), 'utf8').trim().split(':')[1]!
    const key = readFileSync(join(dir, 'secrets/api-keys.txt'), 'utf8').trim().split('\n').at(-1)!
    expect(initStdout).not.toContain(password)
    expect(initStdout).not.toContain(key)
    expect(initStdout).toContain('password in secrets/basic-auth.txt')
    expect(initStdout).toContain('X-API-Key   in secrets/api-keys.txt')
  })

  it('refuses an unknown SNI at the handshake and an unknown Host without an answer or a redirect', async () => {
    const handshake = await new Promise<string>((resolve) => {
      const socket = connect({
        host: '127.0.0.1',
        port: httpsPort,
        servername: 'evil.example',
        rejectUnauthorized: false,
      })
      socket.once('secureConnect', () => {
        resolve(`handshake completed with ${socket.getPeerCertificate().subject?.CN}`)
        socket.destroy()
      })
      socket.once('error', (error) => resolve(`refused: ${error.message}`))
    })
    expect(handshake).toMatch(/^refused: .*alert/)

    await expect(httpsAsk({servername: DOMAIN, host: 'evil.example', path: '/api/'})).rejects.toThrow(
      /socket hang up|ECONNRESET/,
    )
    await expect(httpAsk('evil.example', '/x')).rejects.toThrow(/socket hang up|ECONNRESET/)
    // The configured domain is redirected to itself, whatever the client's port said.
    const redirect = await httpAsk(`${DOMAIN}:${httpPort}`, '/x?y=1')
    expect(redirect.status).toBe(308)
    expect(redirect.headers.location).toBe(`https://${DOMAIN}:${httpsPort}/x?y=1`)
  })

  it('passes the X-Forwarded-For it saw, not a spoofed one, and names no internal service', async () => {
    const reply = await httpsAsk({
      servername: DOMAIN,
      host: `${DOMAIN}:${httpsPort}`,
      path: '/api/',
      headers: {'X-Forwarded-For': '6.6.6.6', 'X-Forwarded-Ssl': 'on', Forwarded: 'for=6.6.6.6'},
    })
    expect(reply.status, reply.body).toBe(200)
    const body = JSON.parse(reply.body) as {forwarded_for: string; client_ip: string; secure: boolean}
    expect(body.forwarded_for).not.toContain('6.6.6.6')
    expect(body.forwarded_for).toMatch(/^[0-9.]+$/)
    expect(body.client_ip).toBe(body.forwarded_for)
    expect(body.secure).toBe(true)
    expect(reply.headers['x-gateway-upstream']).toBeUndefined()
    expect(reply.headers['x-content-type-options']).toBe('nosniff')
  })

  it('docker inspect: every container locked down, limited, with capped logs and no SECRET_KEY in its environment', async () => {
    const containers = await projectContainersChecked(NAME)
    expect(containers).toHaveLength(3)
    for (const info of containers) {
      const inspect = await docker.getContainer(info.Id).inspect()
      const name = inspect.Name.replace(/^\//, '')
      const host = inspect.HostConfig
      expect(host.ReadonlyRootfs, name).toBe(true)
      expect(host.CapDrop, name).toEqual(['ALL'])
      expect(host.SecurityOpt, name).toContain('no-new-privileges:true')
      expect(host.Memory, name).toBeGreaterThan(0)
      expect(host.NanoCpus, name).toBeGreaterThan(0)
      expect(host.LogConfig, name).toEqual({Type: 'json-file', Config: {'max-size': '10m', 'max-file': '3'}})
      expect(
        inspect.Config.Env.filter((entry) => /SECRET_KEY=/.test(entry)),
        name,
      ).toEqual([])
      const networks = Object.keys(inspect.NetworkSettings.Networks).sort()
      if (name.includes('-gateway-')) {
        expect(host.CapAdd?.sort(), name).toEqual([
          'CAP_CHOWN',
          'CAP_DAC_OVERRIDE',
          'CAP_NET_BIND_SERVICE',
          'CAP_SETGID',
          'CAP_SETUID',
        ])
        expect(networks).toEqual([`${NAME}_default`, `${NAME}_internal`])
      } else {
        expect(host.CapAdd ?? [], name).toEqual([])
        expect(networks).toEqual([`${NAME}_internal`])
      }
    }

    const internal = await docker.getNetwork(`${NAME}_internal`).inspect()
    expect(internal.Internal).toBe(true)
  })

  it("logs an api-key route's route and service, also when the key is missing", async () => {
    const key = readFileSync(join(dir, 'secrets/api-keys.txt'), 'utf8').trim().split('\n').at(-1)!
    const accepted = await httpsAsk({
      servername: DOMAIN,
      host: `${DOMAIN}:${httpsPort}`,
      path: '/keyed/api/',
      headers: {'X-API-Key': key, 'X-Request-ID': `hardening-${RUN_ID}-1`},
    })
    expect(accepted.status, accepted.body).toBe(200)
    const refused = await httpsAsk({
      servername: DOMAIN,
      host: `${DOMAIN}:${httpsPort}`,
      path: '/keyed/api/',
      headers: {'X-Request-ID': `hardening-${RUN_ID}-2`},
    })
    expect(refused.status).toBe(401)

    const entries = await retryUntil(
      async () =>
        (await gatewayAccessLog(NAME))
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as Record<string, unknown>)
          .filter((entry) => String(entry.request_id).startsWith(`hardening-${RUN_ID}-`)),
      (found) => found.length === 2,
      {timeoutMs: 10_000, intervalMs: 200, describe: 'both requests in the access log'},
    )
    for (const entry of entries) expect(entry).toMatchObject({route: '/keyed/', service: 'web'})
  })

  it('still passes verify (every check) and `manage.py check --deploy`', async () => {
    const run = await cli(['verify', '--dir', dir, '--json'], 240_000)
    const report = JSON.parse(run.stdout) as {ok: boolean; checks: Array<{id: string; ok: boolean; detail: string}>}
    const explain = report.checks.map((check) => `${check.id}: ${check.ok ? 'ok' : 'FAIL'} ${check.detail}`).join('\n')
    expect(run.status, explain).toBe(0)
    expect(report.checks.every((check) => check.ok)).toBe(true)
    // Every check of the checklist ran (cache passes as not applicable: no route caches here).
    expect(report.checks.map((check) => check.id)).toEqual([...CHECK_IDS])

    const exec = await docker.getContainer(`${NAME}-web-1`).exec({
      Cmd: ['python3', 'manage.py', 'check', '--deploy', '--fail-level', 'WARNING'],
      AttachStdout: true,
      AttachStderr: true,
    })
    const stream = await exec.start({})
    const output = await new Promise<string>((resolve) => {
      let text = ''
      stream.on('data', (chunk: Buffer) => (text += chunk.toString()))
      stream.on('end', () => resolve(text))
    })
    expect((await exec.inspect()).ExitCode, output).toBe(0)
    expect(output).toContain('System check identified no issues')
  }, 300_000)

  // Last: its burst of requests fills the rate limiter's bucket, which the other tests need empty.
  it('logs to its container output only, capped by the engine: no file of the project grows under load', async () => {
    const gateway = (await projectContainersChecked(NAME)).find(
      (info) => info.Labels['com.docker.compose.service'] === 'gateway',
    )!
    const inspect = await docker.getContainer(gateway.Id).inspect()
    // The bound: json-file, at most 3 files of 10 MB, whatever the traffic.
    expect(inspect.HostConfig.LogConfig).toEqual({Type: 'json-file', Config: {'max-size': '10m', 'max-file': '3'}})
    // Nothing of the host is writable to the gateway: no log folder, every bind mount read-only.
    expect(inspect.Mounts.filter((mount) => mount.Type === 'bind' && mount.RW).map((mount) => mount.Source)).toEqual([])
    expect(inspect.Mounts.some((mount) => mount.Destination === '/var/log/nginx')).toBe(false)
    expect(existsSync(join(dir, 'logs'))).toBe(false)

    const before = fileSizes(dir)
    const count = 150
    for (let index = 1; index <= count; index += 1) {
      const reply = await httpsAsk({
        servername: DOMAIN,
        host: `${DOMAIN}:${httpsPort}`,
        path: '/',
        headers: {'X-Request-ID': `bound-${RUN_ID}-${index}`},
      })
      expect([200, 503]).toContain(reply.status)
    }

    // Every request is in the container's log (the engine's json-file), none in a file of the project.
    const logged = await retryUntil(
      async () => (await gatewayAccessLog(NAME)).split('\n').filter((line) => line.includes(`"bound-${RUN_ID}-`)),
      (lines) => lines.length === count,
      {timeoutMs: 10_000, intervalMs: 200, describe: `${count} requests in the gateway's stdout`},
    )
    expect(logged).toHaveLength(count)
    expect(statSync(inspect.LogPath).size).toBeGreaterThan(0)
    expect(fileSizes(dir)).toEqual(before)
  })
})
