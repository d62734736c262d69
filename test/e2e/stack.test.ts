import {existsSync, readFileSync, rmSync, writeFileSync, appendFileSync} from 'node:fs'
import {join} from 'node:path'
import type {Server} from 'node:net'
import {createServer} from 'node:net'

import {desiredContainers, readProjectEnv, resolveEnvironment} from '../../src/docker/spec.js'
import {loadManifest} from '../../src/manifest/load.js'
import {buildStackSpec} from '../../src/manifest/stack.js'
import {composeObject} from '../../src/render/compose.js'
import {retryUntil} from '../../src/util/retry.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseDocument} from 'yaml'

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
import {compose, ensureComposeV2} from '../helpers/compose.js'

/**
 * The stack against the real engine, driven through the CLI as a user would: init -> up -> HTTPS
 * through the gateway -> status -> `docker compose ps` and `up -d` (Compose v2, which must recreate
 * nothing) -> up again -> down; a project that Compose v2 builds and runs, which `up` must leave as it
 * is and whose replicas Compose recreates behind the gateway; and the ways `up` fails.
 * Every project is named after the run id and labelled with it; afterAll removes whatever is left.
 */

const RUN_ID = newRunId()
const ENV = {CREATE_GATEWAY_RUN_ID: RUN_ID}
const DOMAIN = 'api.localhost'
const projects: string[] = []
const dirs: string[] = []

interface Project {
  name: string
  dir: string
  http: number
  https: number
}

async function initProject(suffix: string): Promise<Project> {
  const name = `cge2e-${RUN_ID}-${suffix}`
  projects.push(name)
  const dir = join(tempDir('cg-e2e-'), name)
  dirs.push(dir)
  const http = await freePort()
  let https = await freePort()
  while (https === http) https = await freePort()
  const result = await runCliAsync(
    [
      'init',
      dir,
      '--yes',
      '--name',
      name,
      '--domain',
      DOMAIN,
      '--bind',
      '127.0.0.1',
      '--http-port',
      String(http),
      '--https-port',
      String(https),
      '--python-image',
      OFFLINE_IMAGES.python,
      '--nginx-image',
      OFFLINE_IMAGES.nginx,
    ],
    {env: ENV, timeoutMs: 60_000},
  )
  expect(result.status, result.stderr).toBe(0)
  return {name, dir, http, https}
}

async function leftovers(project: string): Promise<{containers: string[]; networks: string[]}> {
  return {
    containers: (await projectContainers(project)).map((container) => container.Names[0] ?? container.Id),
    networks: (await projectNetworks(project)).map((network) => network.Name),
  }
}

beforeAll(async () => {
  // Compose v2 is part of what is tested here: installed when missing, and a failure if it cannot be.
  ensureComposeV2()
  await waitForEngineAndImages(240_000)
}, 560_000)

afterAll(async () => {
  await cleanupRun(RUN_ID, projects)
  for (const dir of dirs) rmSync(dir, {recursive: true, force: true})
}, 120_000)

describe('up, status, down on a generated project', () => {
  let project: Project
  let containerIds: string[] = []

  beforeAll(async () => {
    project = await initProject('main')
  }, 60_000)

  it('up builds and starts the replicas and the gateway, and prints the URL', async () => {
    const result = await runCliAsync(['up', '--dir', project.dir, '--timeout', '120'], {env: ENV})
    console.log(`[e2e] up (cold) took ${result.ms} ms`)
    expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0)
    expect(result.stdout).toContain(`https://${DOMAIN}:${project.https}/`)
    expect(result.stdout).toContain(`curl --cacert certs/ca.pem`)
    expect(result.stderr).toMatch(
      /web: Step \d+\/\d+ : FROM create-gateway-offline\/python:forky|image .* is up to date/,
    )
    const containers = await projectContainers(project.name)
    expect(containers.map((container) => container.Names[0]).sort()).toEqual([
      `/${project.name}-gateway-1`,
      `/${project.name}-web-1`,
      `/${project.name}-web-2`,
    ])
    for (const container of containers) {
      expect(container.Labels).toMatchObject({
        'com.docker.compose.project': project.name,
        'com.docker.compose.oneoff': 'False',
        'com.docker.compose.project.working_dir': project.dir,
        'com.docker.compose.project.config_files': join(project.dir, 'docker-compose.yml'),
        'dev.create-gateway.run-id': RUN_ID,
      })
      expect(container.Labels['com.docker.compose.config-hash']).toMatch(/^[0-9a-f]{64}$/)
    }

    // Only the gateway publishes ports, and only on 127.0.0.1.
    const published = containers.flatMap((container) =>
      container.Ports.filter((port) => port.PublicPort).map(
        (port) => `${container.Names[0]} ${port.IP}:${port.PublicPort}`,
      ),
    )
    expect(published.sort()).toEqual(
      [
        `/${project.name}-gateway-1 127.0.0.1:${project.http}`,
        `/${project.name}-gateway-1 127.0.0.1:${project.https}`,
      ].sort(),
    )
    containerIds = containers.map((container) => container.Id).sort()
  }, 300_000)

  it('answers /api/ over HTTPS through the gateway, trusting the project CA, from a replica', async () => {
    const ca = readFileSync(join(project.dir, 'certs', 'ca.pem'), 'utf8')
    const response = await httpsGet({port: project.https, domain: DOMAIN, ca, path: '/api/'})
    expect(response.status).toBe(200)
    const body = JSON.parse(response.body) as {hostname: string}
    const web = (await projectContainers(project.name)).filter(
      (container) => container.Labels['com.docker.compose.service'] === 'web',
    )
    const hostnames = await Promise.all(
      web.map(async (container) => (await docker.getContainer(container.Id).inspect()).Config.Hostname),
    )
    expect(hostnames).toContain(body.hostname)
  })

  it('status --json shows every container running and healthy', async () => {
    type Row = {service: string; name: string; state: string; health: string}
    // `up` returns once each container's own healthcheck passes; the engine's first check (and so the
    // health that status reports) can come up to one interval later.
    const rows = await retryUntil(
      async () => {
        const result = await runCliAsync(['status', '--dir', project.dir, '--json'], {env: ENV, timeoutMs: 60_000})
        expect(result.status, result.stderr).toBe(0)
        const document = JSON.parse(result.stdout) as {
          project: string
          containers: Row[]
          certificate: {mode: string; daysLeft: number; issuer: string}
        }
        expect(document.project).toBe(project.name)
        expect(document.certificate).toMatchObject({
          mode: 'self-signed',
          issuer: expect.stringContaining('create-gateway local CA'),
        })
        expect(document.certificate.daysLeft).toBeGreaterThan(300)
        return document.containers
      },
      (list) => !list.some((row) => row.health === 'starting'),
      {timeoutMs: 30_000, intervalMs: 1_000, describe: "status to show the engine's first healthchecks"},
    )
    expect(rows.map((row) => [row.service, row.name, row.state, row.health])).toEqual([
      ['web', `${project.name}-web-1`, 'running', 'healthy'],
      ['web', `${project.name}-web-2`, 'running', 'healthy'],
      ['gateway', `${project.name}-gateway-1`, 'running', 'healthy'],
    ])
  })

  it('docker compose ps (Compose v2) in the project lists the same containers', async () => {
    const result = await compose(['ps', '-q'], project.dir)
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout.trim().split('\n').sort()).toEqual(containerIds)
  })

  it('docker compose up -d after our up recreates nothing: same IDs, same labels', async () => {
    const before = await projectContainers(project.name)
    const result = await compose(['up', '-d'], project.dir, {timeoutMs: 240_000})
    expect(result.status, result.stderr).toBe(0)
    const after = await projectContainers(project.name)
    console.log(`[e2e] before compose up -d: ${before.map((c) => `${c.Names[0]}=${c.Id.slice(0, 12)}`).join(' ')}`)
    console.log(`[e2e] after compose up -d:  ${after.map((c) => `${c.Names[0]}=${c.Id.slice(0, 12)}`).join(' ')}`)
    expect(after.map((container) => container.Id).sort()).toEqual(containerIds)
    expect(Object.fromEntries(after.map((container) => [container.Id, container.Labels]))).toEqual(
      Object.fromEntries(before.map((container) => [container.Id, container.Labels])),
    )
    expect(result.stderr).not.toMatch(/Recreate|Creating|Created/)
  }, 300_000)

  it('up again (after docker compose up -d) changes nothing: same container IDs, "up to date"', async () => {
    const result = await runCliAsync(['up', '--dir', project.dir], {env: ENV})
    console.log(`[e2e] up (warm, nothing to do) took ${result.ms} ms`)
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toContain('is up to date: nothing changed')
    expect((await projectContainers(project.name)).map((container) => container.Id).sort()).toEqual(containerIds)
  }, 120_000)

  it("logs shows the replicas' output and the access log holds the request", async () => {
    const logs = await runCliAsync(['logs', 'web', '--dir', project.dir, '--tail', '20'], {env: ENV, timeoutMs: 60_000})
    expect(logs.status, logs.stderr).toBe(0)
    expect(logs.stdout).toMatch(new RegExp(`^${project.name}-web-[12] +\\| `, 'm'))
    const access = await runCliAsync(['logs', 'gateway', '--access', '--dir', project.dir], {
      env: ENV,
      timeoutMs: 60_000,
    })
    expect(access.status, access.stderr).toBe(0)
    expect(access.stdout).toMatch(/ 200 GET \/api\/ -> \S+:8000 /)
  })

  it('down removes every container and network with the project label, and keeps the files', async () => {
    const result = await runCliAsync(['down', '--dir', project.dir], {env: ENV, timeoutMs: 120_000})
    expect(result.status, result.stderr).toBe(0)
    expect(await leftovers(project.name)).toEqual({containers: [], networks: []})
    expect(readFileSync(join(project.dir, 'gateway.yaml'), 'utf8')).toContain(`name: ${project.name}`)
  }, 120_000)
})

describe('a project that docker compose (v2) runs', () => {
  let project: Project
  let ca: string
  let ids: string[] = []

  beforeAll(async () => {
    project = await initProject('compose')
    ca = readFileSync(join(project.dir, 'certs', 'ca.pem'), 'utf8')
  }, 60_000)

  /** GET /api/ through the gateway until it answers 200 (the gateway may still be starting). */
  async function apiOnce(): Promise<{status: number; hostname?: string}> {
    try {
      const response = await httpsGet({port: project.https, domain: DOMAIN, ca, path: '/api/'})
      return {
        status: response.status,
        hostname: response.status === 200 ? (JSON.parse(response.body) as {hostname: string}).hostname : undefined,
      }
    } catch {
      return {status: 0}
    }
  }

  async function hostnames(service: string): Promise<string[]> {
    const containers = (await projectContainers(project.name)).filter(
      (container) => container.Labels['com.docker.compose.service'] === service,
    )
    return Promise.all(
      containers.map(async (container) => (await docker.getContainer(container.Id).inspect()).Config.Hostname),
    )
  }

  it('docker compose up -d --build on the fresh project serves /api/ through the gateway', async () => {
    // A file of its own, as any real project has: otherwise BuildKit takes the whole image from its
    // cache (another generated project built it), with that first build's date, and `up` cannot tell
    // such an image is current (README: docker compose and create-gateway on the same stack).
    writeFileSync(join(project.dir, 'services/web/build-id.txt'), `${RUN_ID}\n`)
    const result = await compose(['up', '-d', '--build'], project.dir, {timeoutMs: 600_000})
    expect(result.status, result.stderr).toBe(0)
    const first = await retryUntil(apiOnce, (answer) => answer.status === 200, {
      timeoutMs: 60_000,
      intervalMs: 500,
      describe: '/api/ through the gateway Compose started',
    })
    expect(await hostnames('web')).toContain(first.hostname)
    ids = (await projectContainers(project.name)).map((container) => container.Id).sort()
    expect(ids).toHaveLength(3)
  }, 660_000)

  it('Compose created, label for label and setting for setting, the containers create-gateway up would', async () => {
    const manifest = await loadManifest(project.dir)
    const stack = buildStackSpec(manifest)
    const dotenv = await readProjectEnv(project.dir)
    const imageIds: Record<string, string> = {}
    for (const spec of stack.services) imageIds[spec.service] = (await docker.getImage(spec.image).inspect()).Id
    const desired = desiredContainers(stack, {
      project: stack.project,
      dir: project.dir,
      network: stack.network,
      imageIds,
      environment: Object.fromEntries(
        stack.services.map((spec) => [spec.service, resolveEnvironment(spec, dotenv, {})]),
      ),
      compose: composeObject(manifest),
      variables: dotenv,
    })
    for (const want of desired) {
      const actual = await docker.getContainer(want.name).inspect()
      const image = await docker.getImage(actual.Image).inspect()
      // Labels the image carries come along (Compose puts its project and service labels on images it
      // builds too); every other label is exactly the one create-gateway up sets.
      const inherited = image.Config?.Labels ?? {}
      const labels = want.options.Labels!
      const own = Object.fromEntries(
        Object.entries(actual.Config.Labels).filter(([key, value]) => key in labels || inherited[key] !== value),
      )
      expect(own, want.name).toEqual(labels)
      console.log(
        `[e2e] ${want.name}: config-hash ${want.hash} (ours) = ${actual.Config.Labels['com.docker.compose.config-hash']} (Compose)`,
      )
      const host = want.options.HostConfig!
      expect([...(actual.HostConfig.Binds ?? [])].sort(), want.name).toEqual([...(host.Binds ?? [])].sort())
      // The locked-down runtime (issue 10) too: read-only root, capabilities, limits, capped logs.
      for (const key of [
        'PortBindings',
        'RestartPolicy',
        'NetworkMode',
        'ReadonlyRootfs',
        'CapDrop',
        'CapAdd',
        'SecurityOpt',
        'Memory',
        'NanoCpus',
        'LogConfig',
        'Tmpfs',
      ] as const)
        expect(actual.HostConfig[key] ?? null, `${want.name} HostConfig.${key}`).toEqual(host[key] ?? null)
      for (const key of ['Healthcheck', 'StopSignal', 'StopTimeout', 'Image'] as const)
        expect((actual.Config as unknown as Record<string, unknown>)[key], `${want.name} Config.${key}`).toEqual(
          want.options[key],
        )
      expect(actual.Config.Env).toEqual(expect.arrayContaining(want.options.Env!))
      // Each network the container is on (the services: the internal one; the gateway: both), with Compose's aliases.
      const endpoints = [
        ...Object.entries(want.options.NetworkingConfig!.EndpointsConfig!),
        ...want.extraNetworks.map((network) => [network.name, network.endpoint] as const),
      ]
      expect(Object.keys(actual.NetworkSettings.Networks).sort(), want.name).toEqual(
        endpoints.map(([name]) => name).sort(),
      )
      for (const [network, endpoint] of endpoints)
        expect(actual.NetworkSettings.Networks[network]?.Aliases, `${want.name} on ${network}`).toEqual(
          expect.arrayContaining(endpoint.Aliases!),
        )
    }
  })

  it('create-gateway up after docker compose up changes nothing: same container IDs, no build', async () => {
    const result = await runCliAsync(['up', '--dir', project.dir], {env: ENV})
    expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0)
    expect(result.stdout).toContain('is up to date: nothing changed')
    expect((await projectContainers(project.name)).map((container) => container.Id).sort()).toEqual(ids)
  }, 300_000)

  it('when docker compose up recreates the web replicas, the gateway routes to the new ones (no stale address)', async () => {
    const gatewayBefore = (await projectContainers(project.name)).find(
      (container) => container.Labels['com.docker.compose.service'] === 'gateway',
    )!.Id
    const webBefore = await hostnames('web')
    // A user gives web more memory in gateway.yaml and re-renders: the web service's config changes in
    // docker-compose.yml (its limit), so Compose recreates both replicas.
    const manifestFile = join(project.dir, 'gateway.yaml')
    const manifest = parseDocument(readFileSync(manifestFile, 'utf8'))
    manifest.setIn(['services', 'web', 'limits', 'memory'], '640m')
    writeFileSync(manifestFile, manifest.toString())
    const render = await runCliAsync(['render', '--dir', project.dir], {env: ENV})
    expect(render.status, `${render.stdout}\n${render.stderr}`).toBe(0)
    expect(readFileSync(join(project.dir, 'docker-compose.yml'), 'utf8')).toContain('memory: 640m')
    // up --dry-run sees what Compose is about to do, and changes nothing itself.
    const dry = await runCliAsync(['up', '--dir', project.dir, '--dry-run', '--json'], {env: ENV})
    expect(dry.status, dry.stderr).toBe(0)
    const planned = JSON.parse(dry.stdout) as {changes: boolean; containers: Array<{service: string; action: string}>}
    expect(planned.changes).toBe(true)
    expect(planned.containers.map((container) => [container.service, container.action]).sort()).toEqual([
      ['gateway', 'keep'],
      ['web', 'recreate'],
      ['web', 'recreate'],
    ])
    expect((await projectContainers(project.name)).map((container) => container.Id).sort()).toEqual(ids)
    const result = await compose(['up', '-d'], project.dir, {timeoutMs: 300_000})
    expect(result.status, result.stderr).toBe(0)
    const after = await projectContainers(project.name)
    const webAfter = await hostnames('web')
    expect(webAfter).toHaveLength(2)
    for (const hostname of webAfter) expect(webBefore).not.toContain(hostname)
    // Compose stopped and started the gateway (depends_on restart: true): the same container.
    expect(after.find((container) => container.Labels['com.docker.compose.service'] === 'gateway')!.Id).toBe(
      gatewayBefore,
    )
    await retryUntil(apiOnce, (answer) => answer.status === 200, {
      timeoutMs: 60_000,
      intervalMs: 500,
      describe: '/api/ after Compose recreated the replicas',
    })
    // Round robin over the upstream: a bounded run of requests reaches both new replicas, and only them.
    const answers: Array<{status: number; hostname?: string}> = []
    for (let i = 0; i < 12; i++) answers.push(await apiOnce())
    expect(answers.map((answer) => answer.status)).toEqual(Array(12).fill(200))
    expect(new Set(answers.map((answer) => answer.hostname))).toEqual(new Set(webAfter))
    ids = after.map((container) => container.Id).sort()
  }, 420_000)

  it('create-gateway up agrees with the recreated stack: nothing changed', async () => {
    const result = await runCliAsync(['up', '--dir', project.dir], {env: ENV})
    expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0)
    expect(result.stdout).toContain('is up to date: nothing changed')
    expect((await projectContainers(project.name)).map((container) => container.Id).sort()).toEqual(ids)
  }, 300_000)

  it('docker compose down leaves no container or network of the project', async () => {
    const result = await compose(['down'], project.dir, {timeoutMs: 180_000})
    expect(result.status, result.stderr).toBe(0)
    expect(await leftovers(project.name)).toEqual({containers: [], networks: []})
  }, 240_000)
})

describe('up that fails leaves nothing behind', () => {
  it('names the port when the https port is already taken', async () => {
    const project = await initProject('port')
    const server: Server = createServer()
    await new Promise<void>((resolve) => server.listen({host: '127.0.0.1', port: project.https}, resolve))
    try {
      const result = await runCliAsync(['up', '--dir', project.dir, '--timeout', '120'], {env: ENV})
      expect(result.status).toBe(1)
      expect(result.stderr).toContain(`Port 127.0.0.1:${project.https} (ports.https in gateway.yaml) is already in use`)
      expect(await leftovers(project.name)).toEqual({containers: [], networks: []})
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  }, 300_000)

  it('shows the pip error of the failing build step for a broken requirements.txt', async () => {
    const project = await initProject('pip')
    appendFileSync(join(project.dir, 'services/web/requirements.txt'), 'nonexistent-package-xyz==1.0\n')
    const result = await runCliAsync(['up', '--dir', project.dir, '--timeout', '120'], {env: ENV})
    expect(result.status).toBe(1)
    expect(result.stderr).toMatch(/failed at Step \d+\/\d+ : RUN .*pip install/)
    expect(result.stderr).toContain('nonexistent-package-xyz==1.0')
    expect(result.stderr).toContain('returned a non-zero code')
    expect(await leftovers(project.name)).toEqual({containers: [], networks: []})
  }, 300_000)

  it("shows the gateway's last log lines when it cannot start, and removes the replicas it started", async () => {
    const project = await initProject('nginx')
    writeFileSync(join(project.dir, 'gateway/conf.d/zz-broken.conf'), 'this_is_not_a_directive on;\n')
    const result = await runCliAsync(['up', '--dir', project.dir, '--timeout', '60'], {env: ENV})
    expect(result.status).toBe(1)
    expect(result.stderr).toContain(`${project.name}-gateway-1 (gateway)`)
    expect(result.stderr).toMatch(/Last \d+ log lines of .*-gateway-1:/)
    expect(result.stderr).toContain('unknown directive "this_is_not_a_directive"')
    expect(result.stderr).toContain('Removed what this run created: 3 container(s) and network')
    expect(await leftovers(project.name)).toEqual({containers: [], networks: []})
  }, 300_000)
})

describe('up interrupted with Ctrl-C', () => {
  it('removes what it created, releases the lock and exits 130', async () => {
    const project = await initProject('sigint')
    // Gunicorn starts 30 s late, so the replicas stay "starting" and Ctrl-C lands in the health wait.
    const config = join(project.dir, 'services/web/gunicorn.conf.py')
    writeFileSync(config, `import time\ntime.sleep(30)\n${readFileSync(config, 'utf8')}`)
    const result = await runCliAsync(['up', '--dir', project.dir, '--timeout', '120'], {
      env: ENV,
      interrupt: {when: /^- Waiting for /m, signal: 'SIGINT'},
    })
    expect(result.status, result.stderr).toBe(130)
    expect(result.stderr.trim().split('\n').at(-1)).toBe(
      `Interrupted: removed 3 container(s) and network ${project.name}_default this run created`,
    )
    expect(result.stdout).toBe('')
    expect(await leftovers(project.name)).toEqual({containers: [], networks: []})
    expect(existsSync(join(project.dir, '.create-gateway.lock'))).toBe(false)
  }, 300_000)
})

describe('without a reachable engine', () => {
  it.each([
    [
      'a socket that does not exist',
      'unix:///nonexistent/docker.sock',
      /^Error: Cannot reach the Docker engine: no socket at unix:\/\/\/nonexistent\/docker\.sock \(from DOCKER_HOST\)\. Start it/,
    ],
    [
      'a port nothing listens on',
      'tcp://127.0.0.1:1',
      /^Error: Cannot reach the Docker engine: tcp:\/\/127\.0\.0\.1:1 \(from DOCKER_HOST\) refused the connection/,
    ],
  ])(
    'every command says so in one line and exits 1 (%s)',
    async (_what, host, pattern) => {
      const project = dirs[0] ?? (await initProject('noengine')).dir
      for (const command of [['up'], ['down'], ['status'], ['logs']]) {
        const result = await runCliAsync([...command, '--dir', project], {
          env: {...ENV, DOCKER_HOST: host},
          timeoutMs: 60_000,
        })
        expect(result.status, command[0]).toBe(1)
        expect(result.stderr.trim().split('\n'), command[0]).toHaveLength(1)
        expect(result.stderr.trim(), command[0]).toMatch(pattern)
      }
    },
    120_000,
  )
})
