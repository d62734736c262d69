import {spawn, spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {request} from 'node:https'
import type {IncomingHttpHeaders} from 'node:http'
import {createServer} from 'node:net'

import Docker from 'dockerode'

import {demuxToBuffers} from '../../src/docker/demux.js'
import {retryUntil} from '../../src/util/retry.js'
import {BIN, ROOT, type CliResult} from './cli.js'

/** The offline stand-ins that fixtures/images/build.sh makes; no registry is reachable in tests. */
export const OFFLINE_IMAGES = {
  python: 'create-gateway-offline/python:forky',
  nginx: 'create-gateway-offline/nginx:forky',
  /** The metrics profile's NGINX exporter (Debian's prometheus-nginx-exporter). */
  exporter: 'create-gateway-offline/exporter:forky',
} as const

/** One id per test run; every project and resource of the run carries it. */
export function newRunId(): string {
  return `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`
}

export const docker = new Docker()

/**
 * Wait (bounded) for the engine and the offline base images: another process may still be starting
 * dockerd or building the images when the suite starts.
 */
export async function waitForEngineAndImages(timeoutMs: number): Promise<void> {
  await retryUntil(
    async () => {
      try {
        await docker.ping()
      } catch {
        return 'engine not answering'
      }

      for (const image of Object.values(OFFLINE_IMAGES)) {
        try {
          await docker.getImage(image).inspect()
        } catch {
          return `image ${image} missing (run fixtures/images/build.sh)`
        }
      }

      return 'ready'
    },
    (state) => state === 'ready',
    {timeoutMs, intervalMs: 2000, describe: 'the Docker engine and the offline base images', explain: (state) => state},
  )
}

/**
 * Run the built CLI as a user would, without blocking the event loop (servers in the test keep
 * answering). `interrupt` sends a signal once stderr matches, as a user pressing Ctrl-C would.
 */
export function runCliAsync(
  args: string[],
  options: {
    cwd?: string
    env?: NodeJS.ProcessEnv
    timeoutMs?: number
    interrupt?: {when: RegExp; signal: NodeJS.Signals}
    /** Sees stderr so far after each chunk: lets a test act when the CLI reaches a step. */
    onStderr?: (stderr: string) => void
  } = {},
): Promise<CliResult & {ms: number}> {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: {...process.env, NO_COLOR: '1', ...options.env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    let interrupted = false
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      options.onStderr?.(stderr)
      if (options.interrupt && !interrupted && options.interrupt.when.test(stderr)) {
        interrupted = true
        child.kill(options.interrupt.signal)
      }
    })
    const timer = setTimeout(() => {
      stderr += `\n[test] killed after ${options.timeoutMs ?? 300_000} ms`
      child.kill('SIGKILL')
    }, options.timeoutMs ?? 300_000)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({status, stdout, stderr, ms: Date.now() - started})
    })
  })
}

/** A TCP port nothing listens on right now, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen({host: '127.0.0.1', port: 0}, () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

/**
 * An HTTPS request to the gateway on 127.0.0.1 only, presenting `domain` as SNI and Host and
 * trusting only the project's CA, so the certificate check is real.
 */
export function httpsGet(options: {
  port: number
  domain: string
  ca: string
  path: string
  timeoutMs?: number
  /** Extra request headers (Host is always the domain). */
  headers?: Record<string, string>
}): Promise<{status: number; body: string; headers: IncomingHttpHeaders}> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: options.port,
        path: options.path,
        method: 'GET',
        servername: options.domain,
        headers: {...options.headers, Host: `${options.domain}:${options.port}`},
        ca: options.ca,
        timeout: options.timeoutMs ?? 10_000,
        agent: false,
      },
      (res) => {
        let body = ''
        res.on('data', (chunk: Buffer) => (body += chunk.toString()))
        res.on('end', () => resolve({status: res.statusCode ?? 0, body, headers: res.headers}))
      },
    )
    req.on('timeout', () => req.destroy(new Error(`GET ${options.path} timed out`)))
    req.on('error', reject)
    req.end()
  })
}

export async function projectContainers(project: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({all: true, filters: {label: [`com.docker.compose.project=${project}`]}})
}

/**
 * The project's containers once the engine has run each one's first healthcheck. `up` and `scale`
 * return as soon as a container's own healthcheck passes (they run it themselves), which can be up to
 * one interval before the engine's first check; a test reading Docker's health waits for that here.
 */
export async function projectContainersChecked(project: string, timeoutMs = 30_000): Promise<Docker.ContainerInfo[]> {
  return retryUntil(
    () => projectContainers(project),
    (containers) => !containers.some((container) => container.Status.includes('health: starting')),
    {timeoutMs, intervalMs: 500, describe: `the engine's first healthchecks of ${project}`},
  )
}

export async function projectNetworks(project: string): Promise<Docker.NetworkInspectInfo[]> {
  return docker.listNetworks({filters: {label: [`com.docker.compose.project=${project}`]}})
}

/**
 * Remove everything a test run may have left: containers labelled with the run id or one of its
 * projects, the projects' networks and built images. Never throws: it runs in afterAll.
 */
export async function cleanupRun(runId: string, projects: string[]): Promise<void> {
  const quietly = async (work: () => Promise<unknown>) => {
    try {
      await work()
    } catch {}
  }

  const containers = [
    ...(await docker
      .listContainers({all: true, filters: {label: [`dev.create-gateway.run-id=${runId}`]}})
      .catch(() => [])),
    ...(await Promise.all(projects.map((project) => projectContainers(project).catch(() => [])))).flat(),
  ]
  for (const id of new Set(containers.map((container) => container.Id)))
    await quietly(() => docker.getContainer(id).remove({force: true, v: true}))
  for (const project of projects) {
    for (const network of await projectNetworks(project).catch(() => []))
      await quietly(() => docker.getNetwork(network.Id).remove())
    const images = await docker
      .listImages({filters: {label: [`com.docker.compose.project=${project}`]}})
      .catch(() => [])
    for (const image of images) await quietly(() => docker.getImage(image.Id).remove({force: true}))
  }
}

export function hasCommand(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, {stdio: 'ignore', timeout: 20_000})
  return result.status === 0
}

/** Run a command in a directory with a bound; for docker-compose. */
export function runCommand(command: string, args: string[], cwd: string, timeoutMs = 60_000): CliResult {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return {status: result.status, stdout: result.stdout, stderr: result.stderr}
}

/**
 * What the project's gateway wrote to its stdout and stderr (NGINX's access log and error log), as
 * the engine keeps it: read with `docker logs`' own API, demultiplexed. Empty when there is no gateway.
 */
export async function gatewayOutput(project: string): Promise<{stdout: string; stderr: string}> {
  const gateway = (await projectContainers(project)).find(
    (container) => container.Labels['com.docker.compose.service'] === 'gateway',
  )
  if (!gateway) return {stdout: '', stderr: ''}
  const raw = await docker.getContainer(gateway.Id).logs({stdout: true, stderr: true, follow: false})
  const {stdout, stderr} = demuxToBuffers(raw)
  return {stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8')}
}

/** The gateway's access log: the JSON lines of its stdout. */
export async function gatewayAccessLog(project: string): Promise<string> {
  return (await gatewayOutput(project)).stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .join('\n')
}
