import {appendFileSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {retryUntil} from '../../src/util/retry.js'
import {tempDir} from '../helpers/cli.js'
import {
  cleanupRun,
  docker,
  freePort,
  httpsGet,
  newRunId,
  OFFLINE_IMAGES,
  projectContainers,
  projectNetworks,
  runCliAsync,
  waitForEngineAndImages,
} from '../helpers/e2e.js'

/**
 * The metrics profile on the real engine: `init --metrics PORT`, `up`, requests to the gateway (to
 * 127.0.0.1 only), then the exporter's /metrics on 127.0.0.1:PORT counts them and says NGINX is up.
 * The exporter is published on loopback only and the gateway's public ports lead to no stub_status;
 * `down` leaves nothing. One stack; afterAll removes it whatever happened.
 */

const RUN_ID = newRunId()
const ENV = {CREATE_GATEWAY_RUN_ID: RUN_ID}
const DOMAIN = 'api.localhost'
const NAME = `cgm-${RUN_ID}`
let dir = ''
let parent = ''
let httpsPort = 0
let metricsPort = 0

const cli = (args: string[], timeoutMs = 180_000) => runCliAsync(args, {cwd: parent, env: ENV, timeoutMs})

/** GET /metrics from the exporter on 127.0.0.1, bounded in time. */
async function scrape(): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, {signal: AbortSignal.timeout(10_000)})
  expect(response.status).toBe(200)
  return response.text()
}

/** The value of an unlabelled sample (`name 42`), or undefined when the exposition has none. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

beforeAll(async () => {
  await waitForEngineAndImages(300_000)
  parent = tempDir('cg-metrics-e2e-')
  dir = join(parent, NAME)
  const ports = new Set<number>()
  while (ports.size < 3) ports.add(await freePort())
  const [http, https, metrics] = [...ports]
  httpsPort = https!
  metricsPort = metrics!
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
      '--metrics',
      String(metricsPort),
      '--replicas',
      '1',
      '--python-image',
      OFFLINE_IMAGES.python,
      '--nginx-image',
      OFFLINE_IMAGES.nginx,
      '--exporter-image',
      OFFLINE_IMAGES.exporter,
    ],
    60_000,
  )
  expect(init.status, init.stderr).toBe(0)
  // One Gunicorn worker (as top.test.ts): lighter on a shared engine; the exporter reads the gateway.
  appendFileSync(join(dir, 'services', 'web', 'Dockerfile'), 'ENV GUNICORN_WORKERS=1\n')
  const up = await cli(['up', '--dir', dir, '--timeout', '180'], 600_000)
  expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
}, 900_000)

afterAll(async () => {
  if (dir) await cli(['down', '--dir', dir], 120_000).catch(() => undefined)
  await cleanupRun(RUN_ID, [NAME])
  if (parent) rmSync(parent, {recursive: true, force: true})
}, 180_000)

describe('the metrics profile on a running stack', () => {
  it("the exporter's nginx_http_requests_total counts the requests sent, and nginx_up is 1", async () => {
    const before = await retryUntil(scrape, (text) => sample(text, 'nginx_up') === 1, {
      timeoutMs: 30_000,
      intervalMs: 1000,
      describe: 'the exporter reaching the gateway (nginx_up 1)',
      explain: (text) =>
        text
          .split('\n')
          .filter((line) => line.startsWith('nginx_'))
          .join(' | ') || text.slice(0, 200),
    })
    const start = sample(before, 'nginx_http_requests_total')
    expect(start).toBeGreaterThan(0)

    const ca = readFileSync(join(dir, 'certs', 'ca.pem'), 'utf8')
    // Fewer than the default burst (20), spaced out: none is rate-limited.
    const sent = 12
    for (let index = 0; index < sent; index += 1) {
      const answer = await httpsGet({port: httpsPort, domain: DOMAIN, ca, path: '/'})
      expect(answer.status).toBe(200)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }

    const after = await scrape()
    expect(sample(after, 'nginx_up')).toBe(1)
    // stub_status counts every request NGINX handled: ours, plus the healthchecks and scrapes meanwhile.
    expect(sample(after, 'nginx_http_requests_total')! - start!).toBeGreaterThanOrEqual(sent)
    expect(sample(after, 'nginx_connections_active')).toBeGreaterThanOrEqual(1)
    console.log(
      `[e2e] metrics: nginx_http_requests_total ${start} -> ${sample(after, 'nginx_http_requests_total')} after ${sent} requests`,
    )
  }, 120_000)

  it('publishes the exporter on 127.0.0.1 only, and no public port leads to stub_status', async () => {
    const containers = await projectContainers(NAME)
    const exporter = containers.find((container) => container.Labels['com.docker.compose.service'] === 'nginx-exporter')
    expect(exporter, 'the exporter container').toBeDefined()
    const bindings = (await docker.getContainer(exporter!.Id).inspect()).HostConfig.PortBindings as Record<
      string,
      Array<{HostIp: string; HostPort: string}>
    >
    expect(bindings).toEqual({'9113/tcp': [{HostIp: '127.0.0.1', HostPort: String(metricsPort)}]})
    const gateway = containers.find((container) => container.Labels['com.docker.compose.service'] === 'gateway')!
    const published = gateway.Ports.filter((port) => port.PublicPort !== undefined).map((port) => port.PrivatePort)
    expect(new Set(published)).toEqual(new Set([80, 443]))
    const ca = readFileSync(join(dir, 'certs', 'ca.pem'), 'utf8')
    const probe = await httpsGet({port: httpsPort, domain: DOMAIN, ca, path: '/nginx_status'})
    expect(probe.body).not.toContain('Active connections')

    const status = await cli(['status', '--dir', dir, '--json'], 60_000)
    expect(status.status, status.stderr).toBe(0)
    const rows = (JSON.parse(status.stdout) as {containers: Array<{service: string; state: string}>}).containers
    expect(rows.find((row) => row.service === 'nginx-exporter')?.state).toBe('running')
  }, 60_000)

  it('down removes the exporter with the rest of the project', async () => {
    const result = await cli(['down', '--dir', dir], 120_000)
    expect(result.status, result.stderr).toBe(0)
    expect(await projectContainers(NAME)).toEqual([])
    expect(await projectNetworks(NAME)).toEqual([])
  }, 150_000)
})
