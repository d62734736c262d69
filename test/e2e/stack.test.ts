import {existsSync, readFileSync, rmSync, writeFileSync, appendFileSync} from 'node:fs'
import {join} from 'node:path'
import type {Server} from 'node:net'
import {createServer} from 'node:net'

import {retryUntil} from '../../src/util/retry.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {tempDir} from '../helpers/cli.js'
import {
  cleanupRun,
  docker,
  freePort,
  hasCommand,
  httpsGet,
  newRunId,
  OFFLINE_IMAGES,
  projectContainers,
  projectNetworks,
  runCliAsync,
  runCommand,
  waitForEngineAndImages,
} from '../helpers/e2e.js'

/**
 * The stack against the real engine, driven through the CLI as a user would: init -> up -> HTTPS
 * through the gateway -> status -> docker-compose ps -> up again -> down; and the ways `up` fails.
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
  await waitForEngineAndImages(240_000)
}, 250_000)

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
      /web: Step \d+\/\d+ : FROM create-gateway-offline\/python:bookworm|image .* is up to date/,
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

  it.runIf(hasCommand('docker-compose', ['version']))(
    'docker-compose ps (Compose v1) in the project lists the same containers',
    () => {
      const result = runCommand('docker-compose', ['ps'], project.dir)
      expect(result.status, result.stderr).toBe(0)
      for (const name of [`${project.name}-web-1`, `${project.name}-web-2`, `${project.name}-gateway-1`])
        expect(result.stdout).toContain(name)
      const quiet = runCommand('docker-compose', ['ps', '-q'], project.dir)
      expect(quiet.stdout.trim().split('\n').sort()).toEqual(containerIds)
    },
  )

  it.runIf(hasCommand('docker', ['compose', 'version']))('docker compose ps (Compose v2) lists them too', () => {
    const result = runCommand('docker', ['compose', 'ps', '-q'], project.dir)
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout.trim().split('\n').sort()).toEqual(containerIds)
  })

  it('up again changes nothing: same container IDs, "up to date"', async () => {
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
