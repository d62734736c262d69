import {spawn} from 'node:child_process'
import {request} from 'node:http'
import {join} from 'node:path'

import Docker from 'dockerode'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {retryUntil} from '../../src/util/retry.js'
import {ROOT} from '../helpers/cli.js'
import {docker, newRunId, OFFLINE_IMAGES} from '../helpers/e2e.js'

/**
 * fixtures/swarm/cluster.sh on the real host engine: a 3-node swarm, and the facts `deploy` will rely
 * on, checked through the manager's Engine API: 3 Ready nodes; every node pulls from the registry by
 * the reference the host pushed; a dnsrr service spread over the nodes answers a gateway on the
 * manager across the overlay; the gateway's host-mode 80 and 443 reach 127.0.0.1; a killed worker is
 * marked down and its replicas come back on the nodes left; `up` brings it back; `down` leaves nothing.
 * The cluster has its own name (prefix cg-swarm-e2e-), so a user's cluster on the same engine is
 * never touched, and afterAll runs `down` whatever happened. All requests go to 127.0.0.1.
 */

const RUN_ID = newRunId()
const NAME = `cg-swarm-e2e-${RUN_ID}`
const SCRIPT = join(ROOT, 'fixtures/swarm/cluster.sh')
const LABEL = `dev.create-gateway.swarm=${NAME}`
// The gateway needs only the nginx stand-in: pushing python too would add minutes for nothing here.
const IMAGE = OFFLINE_IMAGES.nginx
const WEB_REPLICAS = 4

interface ScriptResult {
  status: number | null
  stdout: string
  stderr: string
}

/** cluster.sh with this run's name, bounded; stderr (progress, timings) is kept for failures. */
function cluster(args: string[], timeoutMs: number): Promise<ScriptResult> {
  return new Promise((resolve) => {
    const child = spawn('bash', [SCRIPT, ...args], {
      env: {...process.env, CG_SWARM_NAME: NAME, CLUSTER_IMAGES: IMAGE},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      stderr += `\n[test] killed after ${timeoutMs} ms`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({status, stdout, stderr})
    })
  })
}

function expectOk(result: ScriptResult): void {
  expect(result.status, result.stderr).toBe(0)
}

/** `up`'s KEY=VALUE lines. */
function parseLines(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((line) => {
        const at = line.indexOf('=')
        return [line.slice(0, at), line.slice(at + 1)]
      }),
  )
}

/** A GET to 127.0.0.1:port, bounded; rejects on any error or timeout. */
function get(port: number, timeoutMs = 5000): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const req = request({host: '127.0.0.1', port, path: '/', timeout: timeoutMs, agent: false}, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk.toString()))
      res.on('end', () => resolve({status: res.statusCode ?? 0, body: body.trim()}))
    })
    req.on('timeout', () => req.destroy(new Error(`GET 127.0.0.1:${port} timed out`)))
    req.on('error', reject)
    req.end()
  })
}

/**
 * The nodes that answer GETs, sent one after another until every node of `expected` has answered or
 * `limit` requests were sent. Each answer must be a 200 from one of `expected`. The gateway's resolver
 * hands out the replicas in a random order (dnsrr, re-asked every second), so a fixed count of requests
 * can miss a node by chance (12 over 3 nodes: ~2%); 60 make that ~1e-10 while a node that never answers
 * still fails.
 */
async function nodesAnswering(port: number, expected: string[], limit = 60): Promise<Set<string>> {
  const want = new Set(expected)
  const seen = new Set<string>()
  for (let i = 0; i < limit && seen.size < want.size; i++) {
    const response = await get(port)
    expect(response.status).toBe(200)
    expect(want).toContain(response.body)
    seen.add(response.body)
  }

  return seen
}

interface SwarmNode {
  ID: string
  Description: {Hostname: string}
  Spec: {Role: string}
  Status: {State: string}
}

interface SwarmTask {
  NodeID: string
  DesiredState: string
  Status: {State: string; Err?: string}
}

let lines: Record<string, string> = {}
let manager: Docker
let httpPort = 0
let httpsPort = 0

async function nodes(): Promise<SwarmNode[]> {
  return (await manager.listNodes()) as SwarmNode[]
}

async function hostnames(): Promise<Map<string, string>> {
  return new Map((await nodes()).map((node) => [node.ID, node.Description.Hostname]))
}

/** Hostnames of the nodes running web's tasks that should run (one entry per running task). */
async function webNodes(): Promise<string[]> {
  const names = await hostnames()
  const tasks = (await manager.listTasks({
    filters: {service: [`${NAME}-web`], 'desired-state': ['running']},
  })) as SwarmTask[]
  return tasks.filter((task) => task.Status.State === 'running').map((task) => names.get(task.NodeID) ?? task.NodeID)
}

const GATEWAY_CONF = `
server {
  listen 80;
  listen 443;
  # The engine's DNS, re-asked every second: web's replicas are found wherever they run (dnsrr).
  resolver 127.0.0.11 valid=1s ipv6=off;
  location / {
    set $web http://${NAME}-web:80;
    proxy_pass $web;
    proxy_connect_timeout 1s;
    proxy_next_upstream error timeout;
  }
}
`

describe('fixtures/swarm/cluster.sh: a 3-node swarm on one machine', () => {
  beforeAll(async () => {
    // The first run on a machine may build the node image (debootstrap): minutes.
    const result = await cluster(['up'], 20 * 60_000)
    expectOk(result)
    lines = parseLines(result.stdout)
    const api = /^tcp:\/\/127\.0\.0\.1:(\d+)$/.exec(lines.DOCKER_HOST ?? '')
    if (!api) throw new Error(`no DOCKER_HOST line in ${JSON.stringify(result.stdout)}`)
    manager = new Docker({host: '127.0.0.1', port: Number(api[1])})
    httpPort = Number(lines.HTTP_PORT)
    httpsPort = Number(lines.HTTPS_PORT)
    process.stderr.write(result.stderr)
  }, 21 * 60_000)

  afterAll(async () => {
    const result = await cluster(['down'], 5 * 60_000)
    if (result.status !== 0) process.stderr.write(result.stderr)
  }, 6 * 60_000)

  it('up prints the Engine API, the registry and the two ports, published on 127.0.0.1 only', async () => {
    expect(Object.keys(lines)).toEqual(['DOCKER_HOST', 'REGISTRY', 'HTTP_PORT', 'HTTPS_PORT'])
    expect(lines.REGISTRY).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(httpPort).toBeGreaterThan(0)
    expect(httpsPort).toBeGreaterThan(0)
    for (const name of [`${NAME}-manager`, `${NAME}-registry`]) {
      const published = (await docker.getContainer(name).inspect()).HostConfig.PortBindings as Record<
        string,
        {HostIp: string; HostPort: string}[]
      >
      const bindings = Object.values(published).flat()
      expect(bindings.length).toBeGreaterThan(0)
      expect(bindings.map((binding) => binding.HostIp)).toEqual(bindings.map(() => '127.0.0.1'))
    }
  })

  it('three engines form one swarm: a manager and two workers, all Ready', async () => {
    const all = await nodes()
    expect(all.map((node) => node.Description.Hostname).sort()).toEqual(
      ['manager', 'worker1', 'worker2'].map((node) => `${NAME}-${node}`),
    )
    expect(all.map((node) => node.Status.State)).toEqual(['ready', 'ready', 'ready'])
    expect(all.filter((node) => node.Spec.Role === 'manager')).toHaveLength(1)
  })

  it(
    'up again changes nothing: the same lines, the same nodes',
    async () => {
      const before = (await nodes()).map((node) => node.ID).sort()
      const result = await cluster(['up'], 5 * 60_000)
      expectOk(result)
      expect(parseLines(result.stdout)).toEqual(lines)
      expect((await nodes()).map((node) => node.ID).sort()).toEqual(before)
    },
    6 * 60_000,
  )

  it(
    'a dnsrr service pulled from the registry on every node answers a host-mode gateway on the manager, at 127.0.0.1',
    async () => {
      const labels = {[LABEL.split('=')[0]!]: NAME}
      const image = `${lines.REGISTRY}/${IMAGE}`
      await manager.createNetwork({Name: `${NAME}-net`, Driver: 'overlay', Attachable: true, Labels: labels})
      const config = await manager.createConfig({
        Name: `${NAME}-gateway-conf`,
        Labels: labels,
        Data: Buffer.from(GATEWAY_CONF).toString('base64'),
      })
      await manager.createService({
        Name: `${NAME}-web`,
        Labels: labels,
        TaskTemplate: {
          ContainerSpec: {
            Image: image,
            // Each replica answers with the node it runs on (a Swarm template in the environment).
            Env: ['NODE={{.Node.Hostname}}'],
            Command: ['sh', '-c', 'echo "$NODE" > /usr/share/nginx/html/index.html && exec nginx -g "daemon off;"'],
          },
          Networks: [{Target: `${NAME}-net`}],
        },
        Mode: {Replicated: {Replicas: WEB_REPLICAS}},
        EndpointSpec: {Mode: 'dnsrr'},
      })
      await manager.createService({
        Name: `${NAME}-gateway`,
        Labels: labels,
        TaskTemplate: {
          ContainerSpec: {
            Image: image,
            Configs: [
              {
                ConfigID: (config as {id: string}).id,
                ConfigName: `${NAME}-gateway-conf`,
                File: {Name: '/etc/nginx/conf.d/default.conf', UID: '0', GID: '0', Mode: 0o444},
              },
            ],
          },
          Networks: [{Target: `${NAME}-net`}],
          Placement: {Constraints: ['node.role == manager']},
        },
        Mode: {Replicated: {Replicas: 1}},
        EndpointSpec: {
          Ports: [
            {Protocol: 'tcp', TargetPort: 80, PublishedPort: 80, PublishMode: 'host'},
            {Protocol: 'tcp', TargetPort: 443, PublishedPort: 443, PublishMode: 'host'},
          ],
        },
      })

      // Swarm spreads the replicas over the three nodes, so both workers pull the image from the
      // registry (they have no other copy) by the very reference the host pushed.
      const running = await retryUntil(webNodes, (found) => found.length === WEB_REPLICAS, {
        timeoutMs: 180_000,
        intervalMs: 2000,
        describe: `${WEB_REPLICAS} running replicas of web`,
        explain: (found) => found.join(', '),
      })
      expect(new Set(running).size).toBe(3)

      // The gateway resolves web by DNS and round-robins over its replicas on every node, across the
      // overlay; it is reached through the manager's host-mode ports, published on 127.0.0.1.
      await retryUntil(
        () => get(httpPort, 2000).catch((error: Error) => ({status: 0, body: error.message})),
        (response) => response.status === 200,
        {timeoutMs: 120_000, intervalMs: 1000, describe: 'the gateway on HTTP_PORT', explain: (r) => r.body},
      )
      expect(await nodesAnswering(httpPort, running)).toEqual(new Set(running))
      expect(await nodesAnswering(httpsPort, running)).toEqual(new Set(running))
    },
    8 * 60_000,
  )

  it(
    'a worker killed as a machine dies: marked down, its replicas back on the nodes left, the gateway answering',
    async () => {
      const killed = `${NAME}-worker2`
      const before = await webNodes()
      expect(before).toContain(killed)

      // Light load through the failure: 80 requests, one every 250 ms, each bounded.
      const load = (async () => {
        let failed = 0
        for (let i = 0; i < 80; i++) {
          const response = await get(httpPort).catch(() => ({status: 0, body: ''}))
          if (response.status !== 200) failed++
          await new Promise((resolve) => setTimeout(resolve, 250))
        }

        return failed
      })()
      await new Promise((resolve) => setTimeout(resolve, 1000))
      expectOk(await cluster(['stop-node', 'worker2'], 60_000))

      await retryUntil(
        async () => (await nodes()).find((node) => node.Description.Hostname === killed)?.Status.State,
        (state) => state === 'down',
        {timeoutMs: 120_000, intervalMs: 1000, describe: `${killed} marked down`, explain: String},
      )
      const after = await retryUntil(webNodes, (found) => found.length === WEB_REPLICAS && !found.includes(killed), {
        timeoutMs: 180_000,
        intervalMs: 2000,
        describe: `web back to ${WEB_REPLICAS} replicas`,
        explain: String,
      })
      expect(new Set(after).size).toBe(2)
      const failed = await load
      process.stderr.write(`[swarm-cluster] ${failed} of 80 requests failed while ${killed} died\n`)
      expect(failed).toBeLessThanOrEqual(2)
      expect(await nodesAnswering(httpPort, after)).toEqual(new Set(after))
    },
    8 * 60_000,
  )

  it(
    'up starts the killed node again and it rejoins the swarm',
    async () => {
      const result = await cluster(['up'], 5 * 60_000)
      expectOk(result)
      expect(parseLines(result.stdout)).toEqual(lines)
      expect((await nodes()).map((node) => node.Status.State)).toEqual(['ready', 'ready', 'ready'])
    },
    6 * 60_000,
  )

  it(
    'down removes every container, volume, network and host tag it made',
    async () => {
      const result = await cluster(['down'], 5 * 60_000)
      expectOk(result)
      process.stderr.write(result.stderr)
      const filters = {label: [LABEL]}
      expect(await docker.listContainers({all: true, filters})).toEqual([])
      expect((await docker.listVolumes({filters})).Volumes ?? []).toEqual([])
      expect(await docker.listNetworks({filters})).toEqual([])
      const tags = (await docker.listImages()).flatMap((image) => image.RepoTags ?? [])
      expect(tags.filter((tag) => tag.startsWith(`${lines.REGISTRY}/`))).toEqual([])
    },
    6 * 60_000,
  )
})
