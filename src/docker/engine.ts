import {Readable} from 'node:stream'

import Docker from 'dockerode'

import {EngineUnavailableError, OperationError} from '../errors.js'
import {unavailableError} from './engine-errors.js'
import {retryUntil, WaitTimeoutError, withTimeout} from '../util/retry.js'
import {demuxToBuffers} from './demux.js'
import type {Progress} from '../util/progress.js'

/**
 * Docker behind one small interface (testcontainers-node's model): the rest of src/docker/ speaks
 * these types, one dockerode implementation talks to the engine, and unit tests pass a fake.
 */

export type Labels = Record<string, string>

export interface ContainerState {
  id: string
  /** Without the leading `/` the engine puts there. */
  name: string
  labels: Labels
  /** The image as configured (`my-api-web:latest`), not its ID. */
  image: string
  imageId: string
  /** created | running | restarting | paused | exited | dead | removing */
  status: string
  running: boolean
  exitCode: number
  restartCount: number
  /** starting | healthy | unhealthy; undefined when the container has no healthcheck. */
  health?: string
  /** `127.0.0.1:8443->443/tcp`, one per published binding. */
  ports: string[]
  /** The engine's own explanation when the container could not run (`Error` in State). */
  error?: string
}

export interface ImageState {
  id: string
  labels: Labels
  /** When the image was made (ms since the epoch), if the engine says. */
  createdMs?: number
  /** The image's layer digests (RootFS.Layers), base image first. */
  layers?: string[]
}

export interface NetworkState {
  id: string
  name: string
  labels: Labels
}

/** A container's place on one network, as inspect shows it. */
export interface EndpointState {
  /** The DNS names it answers to there (the engine adds the short container ID itself). */
  aliases: string[]
  ipv4: string
  mac: string
}

export interface NetworkOptions {
  Driver?: string
  Internal?: boolean
  Attachable?: boolean
  EnableIPv6?: boolean
  Options?: Labels
}

export interface ExecResult {
  exitCode: number
  stdout: string
  stderr: string
}

export interface LogOptions {
  /** Number of lines from the end, or all. */
  tail?: number | 'all'
  follow?: boolean
  timestamps?: boolean
  /** Only lines from / until this time, in Unix seconds (as the engine's API takes them). */
  since?: number
  until?: number
}

export interface Engine {
  /** Where the engine is, for messages: `unix:///var/run/docker.sock`. */
  readonly endpoint: string
  ping(): Promise<void>
  image(ref: string): Promise<ImageState | undefined>
  /** Pull from a registry; resolves when the engine reports the end of the pull. */
  pullImage(ref: string, onProgress?: Progress): Promise<void>
  /** Start a build from a tar stream; the result is the engine's raw JSON-lines output. */
  buildImage(
    context: NodeJS.ReadableStream,
    options: {tag: string; dockerfile: string; labels: Labels},
  ): Promise<NodeJS.ReadableStream>
  /** Every container (running or not) carrying all the given labels. */
  containers(labels: Labels): Promise<ContainerState[]>
  container(idOrName: string): Promise<ContainerState | undefined>
  createContainer(options: Docker.ContainerCreateOptions): Promise<string>
  startContainer(id: string): Promise<void>
  /** Send a signal to the container's main process (SIGHUP makes NGINX reload its config). */
  signalContainer(id: string, signal: string): Promise<void>
  /** Stop with the container's own stop signal, SIGKILL after `timeoutSeconds`. */
  stopContainer(id: string, timeoutSeconds: number): Promise<void>
  removeContainer(id: string, options?: {volumes?: boolean}): Promise<void>
  /** The raw log stream: multiplexed (8-byte frame headers) since our containers have no TTY. */
  containerLogs(id: string, options: LogOptions): Promise<NodeJS.ReadableStream>
  exec(id: string, cmd: string[]): Promise<ExecResult>
  networks(labels: Labels): Promise<NetworkState[]>
  network(name: string): Promise<NetworkState | undefined>
  /** A bridge network unless `options.Driver` says otherwise; `options` as Compose passes them. */
  createNetwork(name: string, labels: Labels, options?: NetworkOptions): Promise<string>
  /** Connect a created container to one more network (engines before API 1.44 take one at create). */
  connectNetwork(network: string, containerId: string, endpoint: Docker.EndpointSettings): Promise<void>
  /** Take a container off a network (it keeps running); its established connections wait for a reconnect. */
  disconnectNetwork(network: string, containerId: string): Promise<void>
  /** The container's endpoint on each network it is on, by network name. */
  endpoints(containerId: string): Promise<Record<string, EndpointState>>
  removeNetwork(id: string): Promise<void>
  volumes(labels: Labels): Promise<Array<{name: string; labels: Labels}>>
  removeVolume(name: string): Promise<void>
}

const PING_TIMEOUT_MS = 10_000

function labelFilter(labels: Labels): string[] {
  return Object.entries(labels).map(([key, value]) => `${key}=${value}`)
}

function statusCode(error: unknown): number | undefined {
  return (error as {statusCode?: number}).statusCode
}

function isNotFound(error: unknown): boolean {
  return statusCode(error) === 404
}

/** The engine's own message (`{"message": "..."}` body) rather than dockerode's "(HTTP code 500) ..." prefix. */
export function engineMessage(error: unknown): string {
  const json = (error as {json?: {message?: string}}).json
  if (json && typeof json.message === 'string') return json.message
  return error instanceof Error ? error.message : String(error)
}

function describeEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'
}

// unavailableError lives in engine-errors.ts; swarm/connect.ts and tests import it from here.
export {unavailableError} from './engine-errors.js'

function toContainerState(info: Docker.ContainerInspectInfo): ContainerState {
  const ports: string[] = []
  for (const [port, bindings] of Object.entries(info.NetworkSettings?.Ports ?? {})) {
    for (const binding of bindings ?? []) ports.push(`${binding.HostIp || '0.0.0.0'}:${binding.HostPort}->${port}`)
  }

  const state = info.State
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    labels: info.Config.Labels ?? {},
    image: info.Config.Image,
    imageId: info.Image,
    status: state.Status,
    running: state.Running,
    exitCode: state.ExitCode,
    restartCount: info.RestartCount ?? 0,
    health: state.Health?.Status,
    ports: ports.sort(),
    error: (state as {Error?: string}).Error || undefined,
  }
}

export class DockerodeEngine implements Engine {
  readonly docker: Docker
  readonly endpoint: string

  constructor(docker = new Docker(), endpoint = describeEndpoint()) {
    this.docker = docker
    this.endpoint = endpoint
  }

  async ping(): Promise<void> {
    try {
      await withTimeout(this.docker.ping(), PING_TIMEOUT_MS, `the Docker engine at ${this.endpoint} to answer`)
    } catch (error) {
      if (error instanceof WaitTimeoutError) {
        throw new EngineUnavailableError(
          `Docker engine at ${this.endpoint} did not answer within ${PING_TIMEOUT_MS} ms; check that dockerd is running and DOCKER_HOST is right.`,
          {cause: error},
        )
      }

      throw (
        unavailableError(error, this.endpoint) ??
        new EngineUnavailableError(`Docker engine at ${this.endpoint} did not answer: ${engineMessage(error)}`, {
          cause: error,
        })
      )
    }
  }

  async image(ref: string): Promise<ImageState | undefined> {
    try {
      const info = await this.docker.getImage(ref).inspect()
      const created = Date.parse(info.Created)
      return {
        id: info.Id,
        labels: info.Config?.Labels ?? {},
        ...(Number.isFinite(created) ? {createdMs: created} : {}),
        layers: info.RootFS?.Layers ?? [],
      }
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw error
    }
  }

  async pullImage(ref: string, onProgress?: Progress): Promise<void> {
    const stream = await this.docker.pull(ref)
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (error: Error | null, events: Array<{error?: string}>) => {
          const failed = events?.find((event) => event.error)
          if (error) reject(error)
          else if (failed) reject(new Error(failed.error))
          else resolve()
        },
        (event: {status?: string; id?: string}) => {
          if (event.status && !event.status.startsWith('Downloading') && !event.status.startsWith('Extracting')) {
            onProgress?.(`${event.id ? `${event.id}: ` : ''}${event.status}`)
          }
        },
      )
    })
  }

  async buildImage(
    context: NodeJS.ReadableStream,
    options: {tag: string; dockerfile: string; labels: Labels},
  ): Promise<NodeJS.ReadableStream> {
    return this.docker.buildImage(context, {
      t: options.tag,
      dockerfile: options.dockerfile,
      labels: options.labels,
      rm: true,
      forcerm: true,
    })
  }

  async containers(labels: Labels): Promise<ContainerState[]> {
    const list = await this.docker.listContainers({all: true, filters: {label: labelFilter(labels)}})
    const states = await Promise.all(list.map((item) => this.container(item.Id)))
    return states.filter((state): state is ContainerState => state !== undefined)
  }

  async container(idOrName: string): Promise<ContainerState | undefined> {
    try {
      return toContainerState(await this.docker.getContainer(idOrName).inspect())
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw error
    }
  }

  async createContainer(options: Docker.ContainerCreateOptions): Promise<string> {
    const container = await this.docker.createContainer(options)
    return container.id
  }

  async startContainer(id: string): Promise<void> {
    await this.docker.getContainer(id).start()
  }

  async signalContainer(id: string, signal: string): Promise<void> {
    await this.docker.getContainer(id).kill({signal})
  }

  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({t: timeoutSeconds})
    } catch (error) {
      // 304: already stopped; 404: already gone. Both are the state we wanted.
      if (statusCode(error) === 304 || isNotFound(error)) return
      throw error
    }
  }

  async removeContainer(id: string, options: {volumes?: boolean} = {}): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({force: true, v: options.volumes ?? false})
    } catch (error) {
      // 409 "removal already in progress" and 404 both end with the container gone.
      if (isNotFound(error) || (statusCode(error) === 409 && /already in progress/.test(engineMessage(error)))) return
      throw error
    }
  }

  async containerLogs(id: string, options: LogOptions): Promise<NodeJS.ReadableStream> {
    const container = this.docker.getContainer(id)
    // No `tail` means all lines.
    const common = {
      stdout: true,
      stderr: true,
      timestamps: options.timestamps ?? false,
      ...(typeof options.tail === 'number' ? {tail: options.tail} : {}),
      ...(options.since === undefined ? {} : {since: options.since}),
      ...(options.until === undefined ? {} : {until: options.until}),
    }
    if (options.follow) return container.logs({...common, follow: true})
    const buffer = await container.logs({...common, follow: false})
    return Readable.from([buffer])
  }

  async exec(id: string, cmd: string[]): Promise<ExecResult> {
    const exec = await this.docker.getContainer(id).exec({Cmd: cmd, AttachStdout: true, AttachStderr: true})
    const stream = await exec.start({hijack: true, stdin: false})
    const raw: Buffer[] = []
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => raw.push(chunk))
      stream.on('end', resolve)
      stream.on('close', resolve)
      stream.on('error', reject)
    })
    const {stdout, stderr} = demuxToBuffers(Buffer.concat(raw))
    // The output can end a moment before the engine records the exit code.
    const info = await retryUntil(
      () => exec.inspect(),
      (state) => !state.Running && state.ExitCode !== null,
      {
        timeoutMs: 5000,
        intervalMs: 50,
        describe: `the exit code of \`${cmd.join(' ')}\` in ${id}`,
      },
    )
    return {exitCode: info.ExitCode ?? -1, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8')}
  }

  async networks(labels: Labels): Promise<NetworkState[]> {
    const list = await this.docker.listNetworks({filters: {label: labelFilter(labels)}})
    return list.map((network) => ({id: network.Id, name: network.Name, labels: network.Labels ?? {}}))
  }

  async network(name: string): Promise<NetworkState | undefined> {
    // The engine's name filter matches substrings; keep the exact name only.
    const list = await this.docker.listNetworks({filters: {name: [name]}})
    const found = list.find((network) => network.Name === name)
    return found ? {id: found.Id, name: found.Name, labels: found.Labels ?? {}} : undefined
  }

  async createNetwork(name: string, labels: Labels, options: NetworkOptions = {}): Promise<string> {
    const network = await this.docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      ...options,
      Labels: labels,
      CheckDuplicate: true,
    })
    return network.id
  }

  async connectNetwork(network: string, containerId: string, endpoint: Docker.EndpointSettings): Promise<void> {
    await this.docker.getNetwork(network).connect({Container: containerId, EndpointConfig: endpoint})
  }

  async disconnectNetwork(network: string, containerId: string): Promise<void> {
    await this.docker.getNetwork(network).disconnect({Container: containerId})
  }

  async endpoints(containerId: string): Promise<Record<string, EndpointState>> {
    const networks = (await this.docker.getContainer(containerId).inspect()).NetworkSettings?.Networks ?? {}
    return Object.fromEntries(
      Object.entries(networks).map(([name, settings]) => [
        name,
        {aliases: settings.Aliases ?? [], ipv4: settings.IPAddress ?? '', mac: settings.MacAddress ?? ''},
      ]),
    )
  }

  async removeNetwork(id: string): Promise<void> {
    try {
      await this.docker.getNetwork(id).remove()
    } catch (error) {
      if (isNotFound(error)) return
      throw error
    }
  }

  async volumes(labels: Labels): Promise<Array<{name: string; labels: Labels}>> {
    const result = await this.docker.listVolumes({filters: {label: labelFilter(labels)}})
    return (result.Volumes ?? []).map((volume) => ({name: volume.Name, labels: volume.Labels ?? {}}))
  }

  async removeVolume(name: string): Promise<void> {
    try {
      await this.docker.getVolume(name).remove()
    } catch (error) {
      if (isNotFound(error)) return
      throw error
    }
  }
}

/** Options of `up`, `down` and `status`: the engine to use and where to say what is happening. */
export interface StackOptions {
  /** Defaults to the engine at DOCKER_HOST / the local socket (connectEngine). */
  engine?: Engine
  onProgress?: Progress
}

/**
 * The engine at DOCKER_HOST (dockerode's default reads it) or the local socket, pinged before use so
 * the first thing a user sees when Docker is missing is one clear line, not a stack trace.
 */
export async function connectEngine(): Promise<Engine> {
  let engine: DockerodeEngine
  try {
    engine = new DockerodeEngine()
  } catch (error) {
    // docker-modem parses DOCKER_HOST in its constructor.
    throw new EngineUnavailableError(
      `DOCKER_HOST=${process.env.DOCKER_HOST ?? ''} is not a usable engine address (${engineMessage(error)}); use unix:///var/run/docker.sock or tcp://HOST:2375.`,
      {cause: error},
    )
  }

  await engine.ping()
  return engine
}

/** Wrap an engine call that failed for a reason other than reachability. */
export function engineFailure(what: string, error: unknown): OperationError {
  const unavailable = unavailableError(error, describeEndpoint())
  if (unavailable) return unavailable
  return new OperationError(`${what}: ${engineMessage(error)}`, {cause: error})
}
