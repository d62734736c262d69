import {spawn} from 'node:child_process'
import {readFileSync, rmSync} from 'node:fs'
import {Agent, request} from 'node:https'
import {join} from 'node:path'

import Docker from 'dockerode'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {demuxToBuffers} from '../../src/docker/demux.js'
import type {Snapshot} from '../../src/top/snapshot.js'
import {retryUntil} from '../../src/util/retry.js'
import {ROOT, tempDir} from '../helpers/cli.js'
import {httpsGet, newRunId, OFFLINE_IMAGES, runCliAsync, waitForEngineAndImages} from '../helpers/e2e.js'

/**
 * `create-gateway deploy` on a real 3-node swarm (fixtures/swarm/cluster.sh, its own name so nothing
 * else is touched): deploy -> the gateway on the manager answers on 127.0.0.1:HTTPS_PORT from web
 * replicas on two nodes -> `status` lists the tasks per node -> `down` leaves no service, config,
 * secret or network of the stack. The clear failures (not a manager, registry unreachable) are checked
 * first: they stop before anything is built. afterAll runs `cluster.sh down` whatever happened.
 */

const RUN_ID = newRunId()
const NAME = `cg-swarm-e2e-d${RUN_ID}`
const PROJECT = `cgsw${RUN_ID}`
const DOMAIN = 'api.localhost'
const SCRIPT = join(ROOT, 'fixtures/swarm/cluster.sh')
const NAMESPACE_LABEL = `com.docker.stack.namespace=${PROJECT}`

function cluster(args: string[], timeoutMs: number): Promise<{status: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    const child = spawn('bash', [SCRIPT, ...args], {
      env: {...process.env, CG_SWARM_NAME: NAME, CLUSTER_IMAGES: Object.values(OFFLINE_IMAGES).join(' ')},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({status, stdout, stderr})
    })
  })
}

let lines: Record<string, string> = {}
let manager: Docker
let dir = ''
let env: NodeJS.ProcessEnv = {}

async function leftovers(): Promise<string[]> {
  const filters = {label: [NAMESPACE_LABEL]}
  const json = JSON.stringify(filters)
  const services = await manager.listServices({filters})
  const configs = (await manager.listConfigs({filters: json})) as Array<{Spec: {Name: string}}>
  const secrets = (await manager.listSecrets({filters: json})) as Array<{Spec: {Name: string}}>
  const networks = await manager.listNetworks({filters})
  return [
    ...services.map((service) => `service ${service.Spec?.Name}`),
    ...configs.map((config) => `config ${config.Spec.Name}`),
    ...secrets.map((secret) => `secret ${secret.Spec.Name}`),
    ...networks.map((network) => `network ${network.Name}`),
  ]
}

describe('create-gateway deploy on a 3-node swarm', () => {
  beforeAll(async () => {
    await waitForEngineAndImages(240_000)
    const up = await cluster(['up'], 15 * 60_000)
    expect(up.status, up.stderr).toBe(0)
    lines = Object.fromEntries(
      up.stdout
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    )
    const api = /^tcp:\/\/127\.0\.0\.1:(\d+)$/.exec(lines.DOCKER_HOST ?? '')
    if (!api) throw new Error(`no DOCKER_HOST line in ${up.stdout}`)
    manager = new Docker({host: '127.0.0.1', port: Number(api[1])})
    env = {DOCKER_HOST: lines.DOCKER_HOST, REGISTRY: lines.REGISTRY}

    dir = join(tempDir('cg-e2e-swarm-'), PROJECT)
    const init = await runCliAsync(
      [
        'init',
        dir,
        '--yes',
        '--name',
        PROJECT,
        '--domain',
        DOMAIN,
        '--bind',
        '127.0.0.1',
        '--http-port',
        lines.HTTP_PORT!,
        '--https-port',
        lines.HTTPS_PORT!,
        '--python-image',
        OFFLINE_IMAGES.python,
        '--nginx-image',
        OFFLINE_IMAGES.nginx,
        // A cached route with auth: the gateway task needs its cache tmpfs and njs (the credential's hash).
        '--cache',
        '/secure/=30s',
        // The metrics profile on its default loopback bind: an exporter service, published nowhere.
        '--metrics',
        '9113',
        '--exporter-image',
        OFFLINE_IMAGES.exporter,
      ],
      {timeoutMs: 60_000},
    )
    expect(init.status, init.stderr).toBe(0)
  }, 17 * 60_000)

  afterAll(async () => {
    const down = await cluster(['down'], 5 * 60_000)
    if (down.status !== 0) process.stderr.write(down.stderr)
    if (dir) rmSync(dir, {recursive: true, force: true})
  }, 6 * 60_000)

  it('refuses, in one line and before building anything, an engine that is not a swarm manager and an unreachable registry', async () => {
    const notManager = await runCliAsync(
      ['deploy', '--dir', dir, '--host', 'unix:///var/run/docker.sock', '--registry', lines.REGISTRY!],
      {env, timeoutMs: 60_000},
    )
    expect(notManager.status).toBe(1)
    expect(notManager.stderr).toMatch(
      /Error: The Docker engine at unix:\/\/\/var\/run\/docker.sock is not a swarm manager/,
    )

    const noRegistry = await runCliAsync(['deploy', '--dir', dir, '--registry', '127.0.0.1:1'], {
      env,
      timeoutMs: 60_000,
    })
    expect(noRegistry.status).toBe(1)
    expect(noRegistry.stderr).toMatch(/Error: Cannot reach the registry at 127\.0\.0\.1:1/)
    expect(await leftovers()).toEqual([])
  })

  it(
    'deploy: the gateway on the manager answers on 127.0.0.1:HTTPS_PORT from web replicas on two nodes',
    async () => {
      const deploy = await runCliAsync(['deploy', '--dir', dir, '--timeout', '300'], {env, timeoutMs: 12 * 60_000})
      process.stderr.write(`[swarm-deploy] deploy took ${deploy.ms} ms\n`)
      expect(deploy.status, deploy.stderr).toBe(0)
      expect(deploy.stderr).toMatch(/web: 2\/2 running/)

      const ca = readFileSync(join(dir, 'certs/ca.pem'), 'utf8')
      // Until both replicas have answered, bounded at 60: the resolver hands out dnsrr tasks in random order.
      // Paced under the gateway-wide limit (10r/s, burst 20): NGINX keeps its DNS answer 5 s, so right
      // after deploy it may know one task only, and back-to-back requests would get the limit's 503.
      const hostnames = new Set<string>()
      for (let i = 0; i < 60 && hostnames.size < 2; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 150))
        const response = await httpsGet({port: Number(lines.HTTPS_PORT), domain: DOMAIN, ca, path: '/'})
        expect(response.status).toBe(200)
        hostnames.add((JSON.parse(response.body) as {hostname: string}).hostname)
      }

      expect(hostnames.size).toBe(2)
      const secure = await httpsGet({port: Number(lines.HTTPS_PORT), domain: DOMAIN, ca, path: '/secure/'})
      expect(secure.status).toBe(401)
    },
    13 * 60_000,
  )

  it('status lists the tasks per node: web on two nodes, the gateway on the manager, all running', async () => {
    const status = await runCliAsync(['status', '--dir', dir, '--json'], {env, timeoutMs: 60_000})
    expect(status.status, status.stderr).toBe(0)
    const tasks = (JSON.parse(status.stdout) as {swarm: {tasks: Array<{service: string; node: string; state: string}>}})
      .swarm.tasks
    const web = tasks.filter((task) => task.service === 'web')
    expect(web.map((task) => task.state)).toEqual(['running', 'running'])
    expect(new Set(web.map((task) => task.node)).size).toBe(2)
    expect(tasks.filter((task) => task.service === 'gateway').map((task) => [task.node, task.state])).toEqual([
      [`${NAME}-manager`, 'running'],
    ])
  })

  it('the tasks run locked down as on one host: read-only root, capabilities dropped, limits, the key as a secret file', async () => {
    const services = await manager.listServices({filters: {label: [NAMESPACE_LABEL]}})
    const byName = new Map(services.map((service) => [service.Spec?.Name, service.Spec?.TaskTemplate]))
    const web = byName.get(`${PROJECT}_web`) as Docker.ContainerTaskSpec
    const gateway = byName.get(`${PROJECT}_gateway`) as Docker.ContainerTaskSpec
    expect(web.ContainerSpec?.ReadOnly).toBe(true)
    expect(web.ContainerSpec?.CapabilityDrop).toEqual(['ALL'])
    expect(web.ContainerSpec?.Env).toContain(`DJANGO_SECRET_KEY_FILE=/run/secrets/web-secret-key`)
    expect(web.ContainerSpec?.Env?.some((line) => line.startsWith('DJANGO_SECRET_KEY='))).toBe(false)
    expect(web.ContainerSpec?.Secrets?.map((secret) => secret.File?.Name)).toEqual(['/run/secrets/web-secret-key'])
    expect(web.Resources?.Limits?.MemoryBytes).toBe(512 * 1024 ** 2)
    expect(gateway.ContainerSpec?.ReadOnly).toBe(true)
    expect(gateway.ContainerSpec?.Mounts?.map((mount) => [mount.Type, mount.Target])).toEqual([
      ['tmpfs', '/tmp'],
      ['tmpfs', '/var/cache/gateway'],
    ])
    const internal = await manager.listNetworks({filters: {name: [`${PROJECT}_internal`]}})
    expect(internal.map((network) => network.Internal)).toEqual([true])
  })

  it(
    "metrics: <stack>_nginx-exporter runs unpublished beside the gateway and counts the gateway's requests over the overlay network",
    async () => {
      const [exporter] = await manager.listServices({filters: {name: [`${PROJECT}_nginx-exporter`]}})
      expect(exporter, 'the exporter service').toBeDefined()
      // Loopback bind: nothing published (a swarm publishes on every address of a node or none).
      expect(exporter!.Spec?.EndpointSpec?.Ports ?? []).toEqual([])
      expect((exporter!.Spec?.TaskTemplate as Docker.ContainerTaskSpec).ContainerSpec?.ReadOnly).toBe(true)

      // Scraped from inside the stack's public overlay network: from the gateway's task on the manager.
      const [task] = (await manager.listTasks({
        filters: {service: [`${PROJECT}_gateway`], 'desired-state': ['running']},
      })) as Array<{Status?: {ContainerStatus?: {ContainerID?: string}}}>
      const gateway = manager.getContainer(task!.Status!.ContainerStatus!.ContainerID!)
      const scrape = async () => {
        const exec = await gateway.exec({
          Cmd: ['curl', '-fsS', '--max-time', '10', 'http://nginx-exporter:9113/metrics'],
          AttachStdout: true,
          AttachStderr: true,
        })
        const stream = await exec.start({})
        const chunks: Buffer[] = []
        for await (const chunk of stream) chunks.push(chunk as Buffer)
        return demuxToBuffers(Buffer.concat(chunks)).stdout.toString('utf8')
      }
      const sample = (text: string, name: string) => {
        const match = new RegExp(`^${name} (\\d+(?:\\.\\d+)?(?:e\\+\\d+)?)$`, 'm').exec(text)
        return match ? Number(match[1]) : undefined
      }

      const before = await retryUntil(scrape, (text) => sample(text, 'nginx_up') === 1, {
        timeoutMs: 60_000,
        intervalMs: 2000,
        describe: 'the exporter reaching the gateway (nginx_up 1)',
        explain: (text) => text.slice(0, 300),
      })
      const start = sample(before, 'nginx_http_requests_total')!
      const ca = readFileSync(join(dir, 'certs/ca.pem'), 'utf8')
      const sent = 5
      for (let index = 0; index < sent; index += 1) {
        expect((await httpsGet({port: Number(lines.HTTPS_PORT), domain: DOMAIN, ca, path: '/'})).status).toBe(200)
        await new Promise((resolve) => setTimeout(resolve, 150))
      }

      const after = await scrape()
      process.stderr.write(
        `[swarm-deploy] metrics: nginx_http_requests_total ${start} -> ${sample(after, 'nginx_http_requests_total')} after ${sent} requests\n`,
      )
      expect(sample(after, 'nginx_http_requests_total')! - start).toBeGreaterThanOrEqual(sent)
    },
    3 * 60_000,
  )

  it(
    "verify on the deployed stack: every check passes, the cache check included; nginx -t ran in the gateway's task",
    async () => {
      const verify = await runCliAsync(['verify', '--dir', dir, '--json'], {env, timeoutMs: 4 * 60_000})
      process.stderr.write(`[swarm-deploy] verify took ${verify.ms} ms\n`)
      const report = JSON.parse(verify.stdout) as {
        ok: boolean
        checks: Array<{id: string; ok: boolean; skipped?: boolean; detail: string; data?: {container?: string}}>
      }
      const failed = report.checks.filter((check) => !check.ok).map((check) => `${check.id}: ${check.detail}`)
      expect(failed, verify.stderr).toEqual([])
      expect(verify.status).toBe(0)
      expect(report.checks.map((check) => check.id)).toEqual([
        'containers',
        'config',
        'redirect',
        'tls',
        'routes',
        'auth',
        'cache',
        'balance',
        'rate-limit',
        'logs',
      ])
      expect(report.checks.filter((check) => check.skipped).map((check) => check.id)).toEqual([])
      const config = report.checks.find((check) => check.id === 'config')!
      expect(config.data?.container).toMatch(new RegExp(`^${PROJECT}_gateway\\.1\\.`))
      expect(report.checks.find((check) => check.id === 'containers')!.detail).toMatch(/resolved by DNS/)
    },
    5 * 60_000,
  )

  it(
    'scale web=4 then web=2 under keep-alive load: no failed request, gateway.yaml keeps the count',
    async () => {
      const ca = readFileSync(join(dir, 'certs/ca.pem'), 'utf8')
      const agent = new Agent({keepAlive: true, maxSockets: 2, ca})
      const get = () =>
        new Promise<number>((resolve) => {
          const req = request(
            {
              host: '127.0.0.1',
              port: Number(lines.HTTPS_PORT),
              path: '/',
              servername: DOMAIN,
              headers: {Host: DOMAIN},
              agent,
              timeout: 10_000,
            },
            (res) => {
              res.resume()
              res.on('end', () => resolve(res.statusCode ?? 0))
            },
          )
          req.on('timeout', () => req.destroy(new Error('timeout')))
          req.on('error', () => resolve(0))
          req.end()
        })
      let stop = false
      const statuses: number[] = []
      // Two clients, one request after another each with a pause: about 8 r/s, under the project's rate
      // limit (10r/s), so any non-200 is a failure of the scaling. Bounded in count; stopped once done.
      const load = Promise.all(
        [0, 1].map(async () => {
          while (!stop && statuses.length < 4000) {
            statuses.push(await get())
            await new Promise((resolve) => setTimeout(resolve, 250))
          }
        }),
      )
      try {
        for (const count of [4, 2]) {
          const scale = await runCliAsync(['scale', `web=${count}`, '--dir', dir, '--timeout', '240'], {
            env,
            timeoutMs: 5 * 60_000,
          })
          expect(scale.status, scale.stderr).toBe(0)
          expect(scale.stdout).toContain(`web: ${count}/${count} running`)
          expect(readFileSync(join(dir, 'gateway.yaml'), 'utf8')).toMatch(new RegExp(`replicas: ${count}\\b`))
        }
      } finally {
        stop = true
        await load
        agent.destroy()
      }

      const failed = statuses.filter((status) => status !== 200).length
      const counts: Record<string, number> = {}
      for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1
      const byStatus = JSON.stringify(counts)
      process.stderr.write(
        `[swarm-deploy] scale 2 -> 4 -> 2: ${failed} of ${statuses.length} requests failed (by status: ${byStatus})\n`,
      )
      expect(statuses.length).toBeGreaterThan(20)
      expect(failed).toBe(0)
    },
    11 * 60_000,
  )

  it('logs gateway shows the access log lines NGINX writes to stdout', async () => {
    const logs = await runCliAsync(['logs', 'gateway', '--dir', dir, '--tail', '20'], {env, timeoutMs: 60_000})
    expect(logs.status, logs.stderr).toBe(0)
    expect(logs.stdout).toMatch(/^gateway \| .*"status":200/m)
  })

  it(
    "top --once --json on the deployed stack counts the requests sent, from the gateway service's log",
    async () => {
      // A window longer than the test file: no request of the stack leaves it between the two snapshots.
      const top = async (host?: string) => {
        const result = await runCliAsync(
          ['top', '--dir', dir, '--once', '--json', '--window', '24h', ...(host ? ['--host', host] : [])],
          {env, timeoutMs: 60_000},
        )
        expect(result.status, result.stderr).toBe(0)
        return JSON.parse(result.stdout) as Snapshot
      }
      const requestsOf = (snapshot: Snapshot, path: string) =>
        snapshot.routes.find((row) => row.path === path)?.requests ?? 0

      // Found through DOCKER_HOST, as status and verify find it.
      const before = await top()
      const ca = readFileSync(join(dir, 'certs/ca.pem'), 'utf8')
      // Under the rate limit (10r/s, burst 20): spaced out, so every answer is the route's own.
      const sent = {'/': 9, '/secure/': 4}
      for (const [path, count] of Object.entries(sent)) {
        for (let index = 0; index < count; index += 1) {
          const answer = await httpsGet({port: Number(lines.HTTPS_PORT), domain: DOMAIN, ca, path})
          expect(answer.status).toBe(path === '/secure/' ? 401 : 200)
          await new Promise((resolve) => setTimeout(resolve, 150))
        }
      }

      // Named with --host this time; NGINX writes a line as it answers, so give the log a moment.
      const after = await retryUntil(
        () => top(lines.DOCKER_HOST),
        (snapshot) =>
          requestsOf(snapshot, '/') - requestsOf(before, '/') >= sent['/'] &&
          requestsOf(snapshot, '/secure/') - requestsOf(before, '/secure/') >= sent['/secure/'],
        {
          timeoutMs: 30_000,
          intervalMs: 2000,
          describe: 'the requests in top --once --json',
          explain: (snapshot) => JSON.stringify(snapshot.routes.map((row) => [row.path, row.requests])),
        },
      )
      process.stderr.write(
        `[swarm-deploy] top routes: ${JSON.stringify(after.routes.map((row) => [row.path, row.requests, row.latency]))}\n`,
      )
      expect(requestsOf(after, '/') - requestsOf(before, '/')).toBe(sent['/'])
      expect(requestsOf(after, '/secure/') - requestsOf(before, '/secure/')).toBe(sent['/secure/'])
      const root = after.routes.find((row) => row.path === '/')!
      expect(root.service).toBe('web')
      expect(root.latency.p50).not.toBeNull()
      expect(root.latency.p50!).toBeLessThanOrEqual(root.latency.p99!)
      const secure = after.routes.find((row) => row.path === '/secure/')!
      expect(secure.status['4xx'] - (before.routes.find((row) => row.path === '/secure/')?.status['4xx'] ?? 0)).toBe(
        sent['/secure/'],
      )
      // The web tasks, as NGINX reached them over the overlay network (dnsrr: each task's own address).
      expect(after.upstreams.filter((row) => row.service === 'web').length).toBeGreaterThanOrEqual(2)
    },
    3 * 60_000,
  )

  it(
    'down removes every service, config, secret and the network of the stack',
    async () => {
      expect((await leftovers()).length).toBeGreaterThan(0)
      const down = await runCliAsync(['down', '--dir', dir], {env, timeoutMs: 3 * 60_000})
      expect(down.status, down.stderr).toBe(0)
      expect(await leftovers()).toEqual([])
    },
    4 * 60_000,
  )

  it(
    'a first deploy that does not converge in time is removed entirely, and says why',
    async () => {
      const deploy = await runCliAsync(['deploy', '--dir', dir, '--timeout', '2'], {env, timeoutMs: 5 * 60_000})
      expect(deploy.status).toBe(1)
      expect(deploy.stderr).toMatch(/Error: Timed out after 2000 ms waiting for the stack to converge/)
      expect(deploy.stderr).toMatch(/deploy failed: removing stack/)
      expect(await leftovers()).toEqual([])
    },
    6 * 60_000,
  )
})
